"""Kubernetes targets: pods by label selector, a deployment, a node. Their spec fields and kinds;
the ``kubernetes`` platform (platforms/kubernetes.py) resolves them through the cluster's API.
On a single-node cluster whose runtime is the local dockerd a pod's containers are local
containers too: pods offer processes, cgroups and Docker's container actions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .base import (
    CGROUPS,
    CONTAINERS,
    DEPLOYMENT,
    NODE,
    PODS,
    PROCESSES,
    register_kind,
    register_platform,
)


class PodSelector(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    namespace: str = "default"
    selector: str
    seed: int | None = Field(None, ge=0, le=2**53, description="Seed of the random choice of pods (recorded when drawn).")


class DeploymentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str = "default"
    name: str


class KubernetesTargets(BaseModel):
    """The keys of Kubernetes targets, and the options they take."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    pod: PodSelector | None = Field(None, description="Kubernetes pods by namespace and label selector.")
    deployment: DeploymentRef | None = Field(None, description="A Kubernetes deployment.")
    node: str | None = Field(None, description="A Kubernetes node by name.")
    kubeconfig: str | None = Field(None, description="Kubeconfig for pod/deployment/node (default: $KUBECONFIG, ~/.kube/config).")
    context: str | None = Field(None, description="Kubeconfig context (default: its current-context).")


register_kind("pod", "kubernetes", {PODS, PROCESSES, CGROUPS, CONTAINERS})
register_kind("deployment", "kubernetes", {DEPLOYMENT})
register_kind("node", "kubernetes", {NODE})
register_platform("kubernetes", "chaoslab.platforms.kubernetes:PLATFORM")
