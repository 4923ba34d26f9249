"""The experiment-file shapes of Docker targets. A leaf (pydantic only), so ``targets`` can use
them without importing the Docker platform (which imports ``targets``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class ContainerSelector(BaseModel):
    """``{container: {label: "k=v"}}``: every running container with that label."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(description="A label `key=value` (or just `key`) the containers carry.")

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        if not v.split("=", 1)[0].strip():
            raise ValueError("a label needs a key (key=value or key)")
        return v


class ComposeSelector(BaseModel):
    """``{compose: {project: P, service: S}}``: the running containers of a Compose service."""

    model_config = ConfigDict(extra="forbid")
    project: str = Field(description="Compose project name (`docker-compose -p`, default: the directory's name).")
    service: str | None = Field(None, description="Service name; every service of the project when omitted.")


CONTAINER_KINDS = frozenset({"container", "compose"})
"""Target kinds that resolve to Docker containers."""

LOCAL_CONTAINER_KINDS = CONTAINER_KINDS | {"pod"}
"""Target kinds whose resolved target may carry local Docker containers (``extra["containers"]``,
and ``cgroups`` when there is one): containers and Compose services, and the containers of pods
on a single-node cluster whose runtime is the local dockerd (platforms/kubernetes.py)."""


def no_local_container(target: Any) -> str:
    """Why a container fault found nothing to act on, for a user to read."""
    what = target.describe() if target is not None else "no target"
    if target is not None and target.kind == "pod":
        return (f"{what}: no container of these pods runs in the local dockerd (chaoslab runs off the "
                "node, or the runtime is not Docker); the pod.* and chaosmesh.* faults act through the cluster")
    return f"{what} has no container to act on"
