"""Kubernetes faults carried out by the API server: pods, deployments, nodes, network policies.

Every object is addressed by name *and* uid (a delete precondition, or a uid check before a
patch), so a fault never acts on a re-created object of the same name. What revert needs (the
original replica count, whether the node was already cordoned, the policy's uid) is saved with
``checkpoint()`` before the cluster changes, so ``chaoslab recover`` can undo it after a SIGKILL.
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from typing import Any

from pydantic import Field, field_validator

from ..errors import CapabilityError, FaultError
from ..platforms import kubernetes as k8s
from ..targets import ResolvedTarget
from ..targets.base import DEPLOYMENT, NODE, PODS
from ..units import Duration
from . import register
from .base import Fault, FaultParams, NoParams, P

POD = frozenset({PODS})


class K8sFault(Fault[P]):
    """A fault carried out by the Kubernetes API: needs the official client installed."""

    @classmethod
    def check(cls) -> None:
        # find_spec, not an import: importing the client takes 0.5-3 s, and `chaoslab doctor`
        # checks every fault's class
        if importlib.util.find_spec("kubernetes") is None:
            raise CapabilityError("the Kubernetes client is not installed: pip install 'chaoslab[kubernetes]'")


def _client(target: ResolvedTarget | None) -> Any:
    if target is None or not target.extra:
        raise FaultError("a Kubernetes fault needs a resolved pod, deployment or node target")
    return k8s.api_client(target.extra.get("kubeconfig"), target.extra.get("context"))


def _delete_pod(client: Any, namespace: str, name: str, uid: str, grace: int) -> bool:
    """Delete one pod if it is still the same object; True when the API accepted it."""
    from kubernetes import client as kc

    body = kc.V1DeleteOptions(grace_period_seconds=grace, preconditions=kc.V1Preconditions(uid=uid))
    try:
        k8s.core(client).delete_namespaced_pod(name, namespace, body=body)
        return True
    except Exception as exc:
        if k8s.api_error(exc) in (404, 409):  # gone, or a new pod took the name
            return False
        raise FaultError(f"deleting pod {namespace}/{name}: {exc}") from None


class DeleteParams(FaultParams):
    grace_period: Duration = Field(30.0, description="Grace period the pods get to stop (seconds).")
    await_replacement: Duration = Field(
        0.0, description="Wait up to this long for the controller's replacements to be Ready and record "
        "`replaced_after` (seconds from the delete) in the journal; 0: do not wait.")


class _PodDelete(K8sFault[P]):
    """Delete the target's pods (each by uid); instantaneous, nothing to revert."""

    needs = POD
    reversible = False

    def _grace(self) -> int:
        """Seconds each pod gets to stop (pod.kill: none)."""
        return 0

    def _await(self) -> float:
        """How long to wait for the controller's replacements (0: do not wait)."""
        return 0.0

    def inject(self) -> None:
        client = _client(self.target)
        assert self.target is not None
        ns = self.target.extra["namespace"]
        deleted = []
        for pod in self.target.extra.get("pods", []):
            if _delete_pod(client, ns, pod["name"], pod["uid"], self._grace()):
                deleted.append({"name": pod["name"], "uid": pod["uid"]})
        if not deleted:
            raise FaultError(f"{self.name}: none of the target's pods exists any more")
        self.state["deleted"] = deleted
        self.state["at"] = time.time()
        wait = self._await()
        if wait > 0:
            self._await_replacement(client, ns, {d["uid"] for d in deleted}, wait)

    def _await_replacement(self, client: Any, ns: str, gone: set[str], wait: float) -> None:
        """Recovery as the cluster defines it: the selector has as many Ready pods as before the
        delete, none of them a deleted one (a pod still terminating is not a replacement)."""
        assert self.target is not None
        want = len(self.target.extra.get("all_pods", [])) or len(self.target.extra.get("pods", []))
        started = time.monotonic()
        while time.monotonic() - started < wait:
            live = k8s.list_pods(client, ns, self.target.extra["selector"])
            ready = [p for p in live if p.metadata.uid not in gone and k8s.is_ready(p)]
            if len(ready) >= want:
                self.state["replaced_after"] = round(time.time() - float(self.state["at"]), 3)
                return
            time.sleep(0.1)
        self.state["replaced_after"] = None  # not within `await_replacement`


@register
class PodDelete(_PodDelete[DeleteParams]):
    name = "pod.delete"
    summary = "Delete the target's pods through the API with a grace period (the controller replaces them)."

    def _grace(self) -> int:
        return round(float(self.params.grace_period))

    def _await(self) -> float:
        return float(self.params.await_replacement)


@register
class PodKill(_PodDelete[NoParams]):
    name = "pod.kill"
    summary = "Delete the target's pods with grace period 0 (containers get SIGKILL at once)."


class CrashloopParams(FaultParams):
    every: Duration = Field(10.0, description="Delete the selected pods again this often.")

    @field_validator("every")
    @classmethod
    def _positive(cls, v: Duration) -> Duration:
        if float(v) < 0.5:
            raise ValueError("every must be at least 0.5s")
        return v


@register
class PodCrashloop(K8sFault[CrashloopParams]):
    name = "pod.crashloop"
    summary = "Kill the selector's pods (grace 0) now and again every `every` seconds for the duration."
    needs = POD

    @property
    def interval(self) -> float | None:
        return float(self.params.every)

    def inject(self) -> None:
        self.state["kills"] = 0
        self._kill(first=True)

    def tick(self) -> None:
        self._kill(first=False)

    def _kill(self, *, first: bool) -> None:
        client = _client(self.target)
        assert self.target is not None
        ex = self.target.extra
        if first:
            pods = [(p["name"], p["uid"]) for p in ex.get("pods", [])]
        else:
            # The replacements the controller made since: as many as were chosen at first.
            live = k8s.list_pods(client, ex["namespace"], ex["selector"])
            pods = [(p.metadata.name, p.metadata.uid) for p in live][: max(1, len(ex.get("pods", [])))]
        for name, uid in pods:
            if _delete_pod(client, ex["namespace"], name, uid, 0):
                self.state["kills"] = int(self.state.get("kills", 0)) + 1

    def revert(self) -> None:
        """Nothing is held: stopping the loop is the revert; the controller restores the pods."""


class ScaleParams(FaultParams):
    replicas: int = Field(..., ge=0, le=10000, description="Replica count during the fault.")


def _deployment(fault: Fault[Any]) -> tuple[Any, str, dict[str, Any]]:
    assert fault.target is not None
    ex = fault.target.extra
    if "deployment" not in ex:
        raise FaultError(f"{fault.name}: the target is not a deployment")
    return _client(fault.target), ex["namespace"], ex["deployment"]


@register
class DeploymentScale(K8sFault[ScaleParams]):
    name = "deployment.scale"
    summary = "Scale a deployment to `replicas`; revert restores the replica count it had before."
    needs = frozenset({DEPLOYMENT})

    def inject(self) -> None:
        client, ns, dep = _deployment(self)
        api = k8s.apps(client)
        live = api.read_namespaced_deployment(dep["name"], ns)
        if live.metadata.uid != dep["uid"]:
            raise FaultError(f"{self.name}: deployment {ns}/{dep['name']} was re-created since it was resolved")
        self.state.update(uid=live.metadata.uid, original=live.spec.replicas)
        self.checkpoint()
        api.patch_namespaced_deployment_scale(dep["name"], ns, {"spec": {"replicas": self.params.replicas}})
        self.state["scaled"] = True

    def revert(self) -> None:
        if "original" not in self.state:
            return
        client, ns, dep = _deployment(self)
        api = k8s.apps(client)
        try:
            live = api.read_namespaced_deployment(dep["name"], ns)
        except Exception as exc:
            if k8s.api_error(exc) == 404:
                return
            raise
        if live.metadata.uid != self.state["uid"]:
            return  # a new deployment of the same name is not ours to scale
        api.patch_namespaced_deployment_scale(dep["name"], ns, {"spec": {"replicas": self.state["original"]}})


def _node(fault: Fault[Any]) -> tuple[Any, str, str]:
    assert fault.target is not None
    node = fault.target.extra.get("node")
    if not node:
        raise FaultError(f"{fault.name}: the target is not a node")
    return _client(fault.target), node["name"], node["uid"]


def _set_unschedulable(client: Any, name: str, uid: str, value: bool) -> bool:
    api = k8s.core(client)
    try:
        live = api.read_node(name)
    except Exception as exc:
        if k8s.api_error(exc) == 404:
            return False
        raise
    if live.metadata.uid != uid:
        return False
    api.patch_node(name, {"spec": {"unschedulable": value}})
    return True


class _NodeFault(K8sFault[P]):
    needs = frozenset({NODE})

    def cordon(self) -> tuple[Any, str, str]:
        client, name, uid = _node(self)
        live = k8s.core(client).read_node(name)
        if live.metadata.uid != uid:
            raise FaultError(f"{self.name}: node {name} was re-registered since it was resolved")
        # A node the user had cordoned already stays cordoned after the revert.
        self.state["was_unschedulable"] = bool(live.spec.unschedulable)
        self.checkpoint()
        _set_unschedulable(client, name, uid, True)
        return client, name, uid

    def revert(self) -> None:
        if "was_unschedulable" not in self.state or self.state["was_unschedulable"]:
            return
        client, name, uid = _node(self)
        _set_unschedulable(client, name, uid, False)


@register
class NodeCordon(_NodeFault[NoParams]):
    name = "node.cordon"
    summary = "Mark a node unschedulable; revert uncordons it (unless it was cordoned before)."

    def inject(self) -> None:
        self.cordon()


class DrainParams(FaultParams):
    timeout: Duration = Field(60.0, description="How long to keep retrying evictions a PodDisruptionBudget blocks.")
    grace_period: Duration | None = Field(None, description="Grace period for evicted pods (default: each pod's own).")


@register
class NodeDrain(_NodeFault[DrainParams]):
    name = "node.drain"
    summary = "Cordon a node and evict its pods through the eviction API (PodDisruptionBudgets are honoured); revert uncordons."

    def inject(self) -> None:
        client, name, _ = self.cordon()
        api = k8s.core(client)
        pods = api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}").items
        todo = [p for p in pods if not _skip_on_drain(p)]
        evicted: list[str] = []
        blocked: dict[str, str] = {}
        deadline = time.monotonic() + float(self.params.timeout)
        grace = None if self.params.grace_period is None else int(float(self.params.grace_period))
        while todo:
            left = []
            for p in todo:
                try:
                    _evict(api, p, grace)
                    evicted.append(f"{p.metadata.namespace}/{p.metadata.name}")
                except Exception as exc:
                    code = k8s.api_error(exc)
                    if code in (404, 409) or (code == 403 and "NamespaceTerminating" in str(exc)):
                        continue
                    if code == 429:  # a PodDisruptionBudget forbids it now: retry, as kubectl drain does
                        blocked[f"{p.metadata.namespace}/{p.metadata.name}"] = "PodDisruptionBudget"
                        left.append(p)
                        continue
                    raise FaultError(f"evicting {p.metadata.namespace}/{p.metadata.name}: {exc}") from None
            todo = left
            if todo and time.monotonic() >= deadline:
                break
            if todo:
                time.sleep(1.0)
        self.state["evicted"] = evicted
        self.state["blocked"] = sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in todo)


def _evict(api: Any, pod: Any, grace: int | None) -> None:
    """POST the pod's eviction subresource: policy/v1 (1.22+), else policy/v1beta1 (older servers
    answer 400/500 "no kind Eviction is registered" to the v1 body)."""
    delete_options: dict[str, Any] = {"preconditions": {"uid": pod.metadata.uid}}
    if grace is not None:
        delete_options["gracePeriodSeconds"] = grace
    last: Exception | None = None
    for version in ("policy/v1", "policy/v1beta1"):
        body = {"apiVersion": version, "kind": "Eviction",
                "metadata": {"name": pod.metadata.name, "namespace": pod.metadata.namespace},
                "deleteOptions": delete_options}
        try:
            api.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body)
            return
        except Exception as exc:
            if k8s.api_error(exc) not in (400, 500):
                raise
            last = exc
    assert last is not None
    raise last


def _skip_on_drain(pod: Any) -> bool:
    """Pods a drain leaves alone: DaemonSet pods, mirror (static) pods, finished pods, and pods
    already being deleted (evicting them again is refused, e.g. in a terminating namespace)."""
    if pod.metadata.deletion_timestamp is not None:
        return True
    if "kubernetes.io/config.mirror" in (pod.metadata.annotations or {}):
        return True
    if any(ref.kind == "DaemonSet" for ref in pod.metadata.owner_references or []):
        return True
    return pod.status.phase in ("Succeeded", "Failed")


class PartitionParams(FaultParams):
    peer: str = Field(..., description="Label selector (key=value,...) of the other side of the partition.")

    @field_validator("peer")
    @classmethod
    def _labels(cls, v: str) -> str:
        parse_labels(v)
        return v


def parse_labels(selector: str) -> dict[str, str]:
    """``app=a,tier=web`` -> dict; only equality terms (a NetworkPolicy selects by labels)."""
    out: dict[str, str] = {}
    for term in selector.split(","):
        key, sep, value = term.strip().partition("=")
        if not sep or not key or "!" in key or value.startswith("="):
            raise ValueError(f"{selector!r}: expected key=value[,key=value...]")
        out[key.strip()] = value.strip()
    return out


@register
class PolicyPartition(K8sFault[PartitionParams]):
    name = "network.policy_partition"
    summary = "Deny traffic both ways between the target's pods and `peer` with NetworkPolicies; revert deletes them."
    needs = POD

    def inject(self) -> None:
        from kubernetes import client as kc

        assert self.target is not None
        ex = self.target.extra
        client = _client(self.target)
        net = kc.NetworkingV1Api(client)
        ns = ex["namespace"]
        sides = [(parse_labels(ex["selector"]), parse_labels(self.params.peer)),
                 (parse_labels(self.params.peer), parse_labels(ex["selector"]))]
        run = (self.run_id or "adhoc").lower().replace("_", "-")[:40]
        self.state.setdefault("policies", [])
        suffix = uuid.uuid4().hex[:6]  # two partitions in one run are two pairs of policies
        for i, (own, other) in enumerate(sides):
            name = f"chaoslab-{run}-partition-{suffix}-{i}"
            # Allow-lists only exist: allow everything except pods carrying all of `other`'s labels.
            # NotIn on each key makes a pod that differs in any one of them allowed (the union of
            # one peer per key), i.e. exactly the pods that are not `other`.
            peers = [kc.V1NetworkPolicyPeer(
                pod_selector=kc.V1LabelSelector(match_expressions=[
                    kc.V1LabelSelectorRequirement(key=k, operator="NotIn", values=[v])]))
                for k, v in other.items()]
            peers.append(kc.V1NetworkPolicyPeer(namespace_selector=kc.V1LabelSelector(match_expressions=[
                kc.V1LabelSelectorRequirement(key="kubernetes.io/metadata.name", operator="NotIn", values=[ns])])))
            body = kc.V1NetworkPolicy(
                metadata=kc.V1ObjectMeta(name=name, labels={"chaoslab.io/run": run}),
                spec=kc.V1NetworkPolicySpec(
                    pod_selector=kc.V1LabelSelector(match_labels=own),
                    policy_types=["Ingress", "Egress"],
                    ingress=[kc.V1NetworkPolicyIngressRule(_from=peers)],
                    egress=[kc.V1NetworkPolicyEgressRule(to=peers)],
                ),
            )
            self.state["policies"].append({"name": name, "namespace": ns, "uid": None})
            self.checkpoint()
            made = net.create_namespaced_network_policy(ns, body)
            self.state["policies"][-1]["uid"] = made.metadata.uid
            self.checkpoint()

    def revert(self) -> None:
        from kubernetes import client as kc

        policies = self.state.get("policies") or []
        if not policies:
            return
        net = kc.NetworkingV1Api(_client(self.target))
        for pol in policies:
            pre = kc.V1Preconditions(uid=pol["uid"]) if pol.get("uid") else None
            try:
                net.delete_namespaced_network_policy(
                    pol["name"], pol["namespace"], body=kc.V1DeleteOptions(preconditions=pre))
            except Exception as exc:
                if k8s.api_error(exc) not in (404, 409):
                    raise
