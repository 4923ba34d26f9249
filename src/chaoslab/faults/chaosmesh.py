"""Chaos Mesh faults: chaoslab step parameters -> a Chaos Mesh resource, created, awaited, deleted.

The resource selects exactly the pods chaoslab resolved (``selector.pods`` by name, mode
``all``), so the seeded choice of the target is the one Chaos Mesh acts on. Inject creates the
resource (its name is checkpointed first, its uid right after), then waits until Chaos Mesh
sets the ``AllInjected`` condition. Revert deletes it by uid; Chaos Mesh's finalizers restore
the pods. ``chaoslab recover`` does the same from the ledger after a SIGKILL. When the step has
a duration, the resource also carries Chaos Mesh's own ``spec.duration`` (the step's plus
``SAFETY_MARGIN``): a runner killed with nobody to run ``recover`` still leaves no fault behind
for long.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from ..errors import FaultError
from ..platforms import chaosmesh as cm
from ..platforms import kubernetes as k8s
from ..targets.base import PODS
from ..units import Duration
from . import _meshrules as rules
from . import register
from .base import FaultParams
from .kubernetes import K8sFault, parse_labels

SAFETY_MARGIN = 30.0
"""Seconds past the step's end at which Chaos Mesh ends a fault the runner did not delete."""


ContainerName = Annotated[str, AfterValidator(rules.check_container_name)]


class MeshParams(FaultParams):
    inject_timeout: Duration = Field(60.0, description="How long to wait for Chaos Mesh to report AllInjected.")


class ContainerParams(MeshParams):
    """For the kinds with Chaos Mesh's ContainerSelector (StressChaos, IOChaos, TimeChaos): without
    ``containers`` Chaos Mesh acts on each pod's first container only."""

    containers: list[ContainerName] | None = Field(
        None, min_length=1, description="Names of the containers to act on in each pod (default: the first).")


MP = TypeVar("MP", bound=MeshParams)


class _Mesh(K8sFault[MP]):
    needs = frozenset({PODS})
    kind: ClassVar[str]

    def body(self) -> dict[str, Any]:
        """The kind-specific part of ``spec``."""
        raise NotImplementedError

    def _selector(self) -> dict[str, Any]:
        assert self.target is not None
        ex = self.target.extra
        return {"pods": {ex["namespace"]: sorted(p["name"] for p in ex.get("pods", []))}}

    def _containers(self) -> list[str] | None:
        names: list[str] | None = getattr(self.params, "containers", None)
        if not names:
            return None
        assert self.target is not None
        # A name no chosen pod has makes Chaos Mesh select nothing and the step wait out its
        # inject_timeout: say which pod lacks which container instead (pods whose containers
        # are not known yet, still pending, are left to Chaos Mesh).
        for pod in self.target.extra.get("pods") or []:
            have = [c["name"] for c in pod.get("containers") or []]
            missing = [n for n in names if have and n not in have]
            if missing:
                raise FaultError(f"{self.name}: pod {pod['name']} has no container {missing[0]!r} "
                                 f"(its containers: {', '.join(have)})")
        return list(names)

    def resource(self, name: str, run: str) -> dict[str, Any]:
        """The Chaos Mesh object this step creates, without touching the cluster."""
        assert self.target is not None
        spec: dict[str, Any] = {"selector": self._selector(), "mode": "all", **self.body()}
        containers = self._containers()
        if containers:
            spec["containerNames"] = containers
        if self.planned_duration:
            # A safety net: should the runner die and nobody run `chaoslab recover`, Chaos Mesh
            # ends the fault itself SAFETY_MARGIN after it was due (chaoslab deletes it on time).
            spec["duration"] = rules.go_duration(self.planned_duration + SAFETY_MARGIN)
        return {
            "apiVersion": f"{cm.GROUP}/{cm.VERSION}", "kind": self.kind,
            "metadata": {"name": name, "namespace": self.target.extra["namespace"],
                         "labels": {"chaoslab.io/run": run}},
            "spec": spec,
        }

    def inject(self) -> None:
        from kubernetes import client as kc

        assert self.target is not None
        ns = self.target.extra["namespace"]
        plural = cm.KINDS[self.kind]
        run = re.sub(r"[^a-z0-9-]", "-", (self.run_id or "adhoc").lower())[:40].strip("-") or "adhoc"
        # A random suffix: two steps of the same fault in one run make two resources.
        kind = self.name.split(".", 1)[1].replace("_", "-")
        name = f"chaoslab-{run[:30].strip('-')}-{kind}-{uuid.uuid4().hex[:6]}"
        obj = self.resource(name, run)
        api = kc.CustomObjectsApi(k8s.api_client(self.target.extra.get("kubeconfig"), self.target.extra.get("context")))
        self.state.update(plural=plural, namespace=ns, name=name, uid=None)
        self.checkpoint()
        try:
            made = api.create_namespaced_custom_object(cm.GROUP, cm.VERSION, ns, plural, obj)
        except Exception as exc:
            raise FaultError(f"{self.name}: the API server refused the {self.kind}: {_body(exc)}") from None
        self.state["uid"] = made["metadata"]["uid"]
        self.checkpoint()
        deadline = time.monotonic() + float(self.params.inject_timeout)
        while True:
            live = api.get_namespaced_custom_object(cm.GROUP, cm.VERSION, ns, plural, name)
            if cm.condition(live, "AllInjected"):
                return
            if time.monotonic() >= deadline:
                raise FaultError(
                    f"{self.name}: Chaos Mesh did not report {self.kind} {ns}/{name} injected within "
                    f"{float(self.params.inject_timeout):g}s (is Chaos Mesh installed in the cluster?)"
                )
            time.sleep(0.5)

    def revert(self) -> None:
        from kubernetes import client as kc

        if not self.state.get("name") or self.target is None:
            return
        api = kc.CustomObjectsApi(k8s.api_client(self.target.extra.get("kubeconfig"), self.target.extra.get("context")))
        pre = kc.V1Preconditions(uid=self.state["uid"]) if self.state.get("uid") else None
        try:
            api.delete_namespaced_custom_object(
                cm.GROUP, cm.VERSION, self.state["namespace"], self.state["plural"], self.state["name"],
                body=kc.V1DeleteOptions(preconditions=pre))
        except Exception as exc:
            if k8s.api_error(exc) not in (404, 409):
                raise


def _body(exc: Exception) -> str:
    return str(getattr(exc, "body", "") or exc)[:500]


# -- PodChaos ------------------------------------------------------------------------------

class ContainerKillParams(MeshParams):
    # Chaos Mesh's webhook: "the name of container is required on container-kill action".
    containers: list[ContainerName] = Field(..., min_length=1, description="Names of the containers to kill in each pod.")


@register
class ContainerKill(_Mesh[ContainerKillParams]):
    name = "chaosmesh.container_kill"
    summary = "Chaos Mesh PodChaos container-kill on the target's pods."
    kind = "PodChaos"

    def body(self) -> dict[str, Any]:
        return {"action": "container-kill"}  # containerNames: from resource(), checked against the pods


# -- NetworkChaos --------------------------------------------------------------------------

class _NetParams(MeshParams):
    # peer before direction: direction's check reads it.
    peer: str | None = Field(None, description="Label selector (key=value) of the other side; default: any.")
    direction: Literal["to", "from", "both"] = "to"
    from_needs_peer: ClassVar[bool] = True
    """Chaos Mesh's webhook refuses `from`/`both` without a target for every action but partition."""

    @field_validator("peer")
    @classmethod
    def _labels(cls, v: str | None) -> str | None:
        if v is not None:
            parse_labels(v)
        return v

    @field_validator("direction")
    @classmethod
    def _direction(cls, v: str, info: ValidationInfo) -> str:
        # "peer" missing from info.data means it failed its own check: that error is enough.
        if v != "to" and cls.from_needs_peer and "peer" in info.data and info.data["peer"] is None:
            raise ValueError(
                f"direction {v!r} needs a peer: Chaos Mesh's webhook refuses it (`from` and `both` direction "
                "cannot be used when targets is empty in netem action)"
            )
        return v


NP = TypeVar("NP", bound=_NetParams)


class _Net(_Mesh[NP]):
    kind = "NetworkChaos"
    action: ClassVar[str]

    def net(self) -> dict[str, Any]:
        raise NotImplementedError

    def body(self) -> dict[str, Any]:
        assert self.target is not None
        out: dict[str, Any] = {"action": self.action, "direction": self.params.direction, **self.net()}
        ns = self.target.extra["namespace"]
        if self.params.peer:
            out["target"] = {"mode": "all", "selector": {
                "namespaces": [ns], "labelSelectors": parse_labels(self.params.peer)}}
        elif self.action == "partition":  # from every other pod of the namespace
            out["target"] = {"mode": "all", "selector": {"namespaces": [ns]}}
        return out


class DelayParams(_NetParams):
    latency: Duration = Field(..., description="Added delay.")
    jitter: Duration = Field(0.0, description="Random variation of the delay.")
    correlation: float = Field(0.0, ge=0, le=100, description="Correlation with the previous packet, percent.")

    @field_validator("latency")
    @classmethod
    def _latency(cls, v: float) -> float:
        return rules.check_duration(v, "latency", allow_zero=False)

    @field_validator("jitter")
    @classmethod
    def _jitter(cls, v: float) -> float:
        return rules.check_duration(v, "jitter", allow_zero=True)


@register
class NetworkDelay(_Net[DelayParams]):
    name = "chaosmesh.network_delay"
    summary = "Chaos Mesh NetworkChaos delay on the target's pods."
    action = "delay"

    def net(self) -> dict[str, Any]:
        return {"delay": {"latency": rules.go_duration(float(self.params.latency)),
                          "jitter": rules.go_duration(float(self.params.jitter)),
                          "correlation": rules.plain_decimal(self.params.correlation)}}


class LossParams(_NetParams):
    loss: float = Field(..., gt=0, le=100, description="Packets dropped, percent.")
    correlation: float = Field(0.0, ge=0, le=100)

    @field_validator("loss")
    @classmethod
    def _loss(cls, v: float) -> float:
        return rules.check_netem_percent(v, "loss")


@register
class NetworkLoss(_Net[LossParams]):
    name = "chaosmesh.network_loss"
    summary = "Chaos Mesh NetworkChaos loss on the target's pods."
    action = "loss"

    def net(self) -> dict[str, Any]:
        return {"loss": {"loss": rules.plain_decimal(self.params.loss),
                         "correlation": rules.plain_decimal(self.params.correlation)}}


class PartitionParams(_NetParams):
    direction: Literal["to", "from", "both"] = "both"
    from_needs_peer: ClassVar[bool] = False  # without a peer: the namespace's other pods


@register
class NetworkPartition(_Net[PartitionParams]):
    name = "chaosmesh.network_partition"
    summary = "Chaos Mesh NetworkChaos partition between the target's pods and `peer` (default: the namespace's pods)."
    action = "partition"

    def net(self) -> dict[str, Any]:
        return {}


class BandwidthParams(_NetParams):
    rate: str = Field(..., description="A whole number and bit, kbit, mbit, gbit, tbit, bps, kbps, mbps, gbps or "
                                       "tbps (bps: bytes per second), e.g. 1mbps.")
    limit: int = Field(20971520, ge=1, description="Bytes queued before drops (at most 4294967295).",
                       json_schema_extra={"maximum": rules.UINT32_MAX})
    buffer: int = Field(10000, ge=1, description="Bucket size, bytes (at most 4294967295).",
                        json_schema_extra={"maximum": rules.UINT32_MAX})

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: str) -> str:
        return rules.check_rate(v)

    @field_validator("limit", "buffer")
    @classmethod
    def _uint32(cls, v: int, info: ValidationInfo) -> int:
        if v > rules.UINT32_MAX:
            raise ValueError(f"{info.field_name} {v} is out of range: Chaos Mesh's {info.field_name} is a uint32 "
                             f"(at most {rules.UINT32_MAX}), its webhook cannot decode a larger number")
        return v


@register
class NetworkBandwidth(_Net[BandwidthParams]):
    name = "chaosmesh.network_bandwidth"
    summary = "Chaos Mesh NetworkChaos bandwidth limit on the target's pods."
    action = "bandwidth"

    def net(self) -> dict[str, Any]:
        return {"bandwidth": {"rate": self.params.rate, "limit": self.params.limit, "buffer": self.params.buffer}}


# -- StressChaos ---------------------------------------------------------------------------

class StressCpuParams(ContainerParams):
    workers: int = Field(1, ge=1, le=8192)
    load: int = Field(100, ge=0, le=100, description="Percent of one CPU per worker.")


@register
class StressCpu(_Mesh[StressCpuParams]):
    name = "chaosmesh.stress_cpu"
    summary = "Chaos Mesh StressChaos CPU stressors in the target's pods."
    kind = "StressChaos"

    def body(self) -> dict[str, Any]:
        return {"stressors": {"cpu": {"workers": self.params.workers, "load": self.params.load}}}


class StressMemoryParams(ContainerParams):
    workers: int = Field(1, ge=1, le=8192)
    size: str = Field("256MB", description="Memory per worker: a size (256MB, 1.5GiB) or a whole percentage "
                                           "of the available memory (1% to 100%).")

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        return rules.check_stress_size(v)


@register
class StressMemory(_Mesh[StressMemoryParams]):
    name = "chaosmesh.stress_memory"
    summary = "Chaos Mesh StressChaos memory stressors in the target's pods."
    kind = "StressChaos"

    def body(self) -> dict[str, Any]:
        return {"stressors": {"memory": {"workers": self.params.workers, "size": self.params.size}}}


# -- IOChaos -------------------------------------------------------------------------------

class IoParams(ContainerParams):
    action: Literal["latency", "fault"] = "latency"
    volume_path: str = Field(..., min_length=1, description="Mount point of the volume in the container.")
    path: str | None = Field(None, description="Glob of the files affected (default: all under the volume).")
    delay: Duration = Field(0.1, description="Added latency per operation (action latency).")
    errno: int = Field(5, ge=1, le=4095, description="Error returned (action fault; 5 = EIO).")
    percent: int = Field(100, ge=1, le=100, description="Share of operations affected.")

    @field_validator("volume_path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"volume_path {v!r} must be absolute: the volume's mount point in the container")
        return v

    @field_validator("delay")
    @classmethod
    def _delay(cls, v: float, info: ValidationInfo) -> float:
        # a latency action of no delay injects nothing; a fault action does not write it
        return rules.check_duration(v, "delay", allow_zero=info.data.get("action") == "fault")


@register
class IoChaos(_Mesh[IoParams]):
    name = "chaosmesh.io"
    summary = "Chaos Mesh IOChaos latency or errors on a volume of the target's pods."
    kind = "IOChaos"

    def body(self) -> dict[str, Any]:
        p = self.params
        out: dict[str, Any] = {"action": p.action, "volumePath": p.volume_path, "percent": p.percent}
        if p.path:
            out["path"] = p.path
        if p.action == "latency":
            out["delay"] = rules.go_duration(float(p.delay))
        else:
            out["errno"] = p.errno
        return out


# -- TimeChaos -----------------------------------------------------------------------------

ClockId = Literal["CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_BOOTTIME"]


def _realtime() -> list[ClockId]:
    return ["CLOCK_REALTIME"]


class TimeParams(ContainerParams):
    offset: str = Field(..., description="Clock shift as a Go duration, e.g. -10m, 2h30m, +300ms.")
    clocks: list[ClockId] = Field(default_factory=_realtime)

    @field_validator("offset")
    @classmethod
    def _offset(cls, v: str) -> str:
        if rules.go_duration_ns(v, "offset") == 0:
            raise ValueError(f"offset {v!r} shifts nothing")
        return v


@register
class TimeShift(_Mesh[TimeParams]):
    name = "chaosmesh.time"
    summary = "Chaos Mesh TimeChaos: shift the clocks of the target's pods."
    kind = "TimeChaos"

    def body(self) -> dict[str, Any]:
        return {"timeOffset": self.params.offset, "clockIds": list(self.params.clocks)}
