"""Seed 002's JSON experiment suites, run as written by ``chaoslab suite run``.

    {"name": ..., "description": ..., "experiments": [
        {"name": ..., "type": "resource_exhaustion|network_partition|node_failure",
         "params": {...}, "duration": 60, "interval": 30}]}

Each entry becomes one chaoslab experiment against the pods of ``--var NAMESPACE=...``
(default ``default``) and ``--var SELECTOR=...`` (a label selector; default: every pod), as
seed 002's scripts take a namespace. ``duration`` is the fault's duration in seconds,
``interval`` the recovery observed after it (and, for crashloop, how often pods are killed).
Each experiment watches the selector's Ready pods (a ``pods`` probe, every 250 ms) from a 5 s
baseline on, and its hypothesis is that they are all Ready again within ``interval`` of the
revert (``time_to_recovery``).

Intensities (documented in docs/kubernetes.md):

=========  ======================  =====================  ======================
resource   low                     medium                 high
=========  ======================  =====================  ======================
cpu        1 worker at 25 %        2 workers at 50 %      4 workers at 90 %
memory     1 worker, 128MB         1 worker, 512MB        2 workers, 1GB
disk       IO latency 10 ms        IO latency 100 ms      IO errors (EIO), 50 %
network    bandwidth 10mbps        bandwidth 1mbps        bandwidth 100kbps
=========  ======================  =====================  ======================
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

INTENSITY: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "cpu": {"low": ("chaosmesh.stress_cpu", {"workers": 1, "load": 25}),
            "medium": ("chaosmesh.stress_cpu", {"workers": 2, "load": 50}),
            "high": ("chaosmesh.stress_cpu", {"workers": 4, "load": 90})},
    "memory": {"low": ("chaosmesh.stress_memory", {"workers": 1, "size": "128MB"}),
               "medium": ("chaosmesh.stress_memory", {"workers": 1, "size": "512MB"}),
               "high": ("chaosmesh.stress_memory", {"workers": 2, "size": "1GB"})},
    "disk": {"low": ("chaosmesh.io", {"action": "latency", "delay": "10ms"}),
             "medium": ("chaosmesh.io", {"action": "latency", "delay": "100ms"}),
             "high": ("chaosmesh.io", {"action": "fault", "errno": 5, "percent": 50})},
    "network": {"low": ("chaosmesh.network_bandwidth", {"rate": "10mbps"}),
                "medium": ("chaosmesh.network_bandwidth", {"rate": "1mbps"}),
                "high": ("chaosmesh.network_bandwidth", {"rate": "100kbps"})},
}

BASELINE = 5.0
"""Seconds of steady state each experiment observes before its fault (the probe's reference)."""

FAILURES = {"pod-delete": "pod.delete", "pod-kill": "pod.kill", "crashloop": "pod.crashloop",
            "node-drain": "node.drain"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ResourceParams(_Strict):
    resource_type: Literal["cpu", "memory", "disk", "network"]
    intensity: Literal["low", "medium", "high"] = "medium"
    volume_path: str = Field("/data", description="Volume for disk exhaustion.")
    pods: list[str] | None = None


class PartitionParams(_Strict):
    partition_type: Literal["random", "specific", "all"] = "random"
    percent: float = Field(50.0, gt=0, le=100, description="Share of the pods partitioned (random).")
    peer: str | None = Field(None, description="Label selector of the other side (default: the other pods).")
    pods: list[str] | None = None


class FailureParams(_Strict):
    failure_type: Literal["pod-delete", "pod-kill", "crashloop", "node-drain"] = "pod-delete"
    node: str | None = None
    percent: float = Field(0, ge=0, le=100, description="Share of the pods (0: one pod).")
    pods: list[str] | None = None


class SeedExperiment(_Strict):
    name: str = Field(..., min_length=1)
    type: Literal["resource_exhaustion", "network_partition", "node_failure"]
    params: dict[str, Any] = Field(default_factory=dict)
    duration: float = Field(60, gt=0, le=7 * 86400)
    interval: float = Field(30, ge=0, le=86400)

    @model_validator(mode="after")
    def _params(self) -> SeedExperiment:
        models: dict[str, type[BaseModel]] = {"resource_exhaustion": ResourceParams,
                                              "network_partition": PartitionParams, "node_failure": FailureParams}
        try:
            models[self.type].model_validate(self.params)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ValueError(f"params.{where}: {first['msg']}") from None
        return self


class SeedSuite(_Strict):
    name: str = Field(..., min_length=1)
    description: str = ""
    experiments: list[SeedExperiment] = Field(..., min_length=1)


def is_seed_suite(data: Any) -> bool:
    """Seed 002's format: experiments are objects with a ``type`` (chaoslab's are file paths)."""
    exps = data.get("experiments") if isinstance(data, dict) else None
    return isinstance(exps, list) and any(isinstance(e, dict) and "type" in e for e in exps)


def to_experiment(entry: SeedExperiment, namespace: str, selector: str, seed: int) -> dict[str, Any]:
    """One seed-002 entry as a chaoslab experiment document."""
    pod: dict[str, Any] = {"namespace": namespace, "selector": selector, "seed": seed}
    step: dict[str, Any] = {"target": "pods", "at": f"{BASELINE:g}s", "duration": f"{entry.duration:g}s"}
    mode = "all"
    if entry.type == "resource_exhaustion":
        rp = ResourceParams.model_validate(entry.params)
        fault, params = INTENSITY[rp.resource_type][rp.intensity]
        step.update(fault=fault, **params)
        if fault == "chaosmesh.io":
            step["volume_path"] = rp.volume_path
    elif entry.type == "network_partition":
        pp = PartitionParams.model_validate(entry.params)
        mode = f"percent:{pp.percent:g}" if pp.partition_type == "random" else "all"
        step.update(fault="chaosmesh.network_partition", direction="both")
        if pp.peer or selector:
            step["peer"] = pp.peer or selector
    else:
        fp = FailureParams.model_validate(entry.params)
        step["fault"] = FAILURES[fp.failure_type]
        mode = f"percent:{fp.percent:g}" if fp.percent else "count:1"
        if fp.failure_type in ("pod-delete", "pod-kill"):
            del step["duration"]
        if fp.failure_type == "crashloop":
            step["every"] = f"{max(entry.interval, 1):g}s"
        if fp.failure_type == "node-drain":
            targets = {"pods": {"node": fp.node or "${NODE}"}}
            return _doc(entry, targets, step, namespace, selector)
    return _doc(entry, {"pods": {"pod": pod, "mode": mode}}, step, namespace, selector)


def _doc(entry: SeedExperiment, targets: dict[str, Any], step: dict[str, Any], namespace: str,
         selector: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": entry.name,
        "tags": ["seed-002", entry.type],
        "targets": targets,
        # The steady state, on the cluster's own account: as many Ready pods as before the fault.
        "probes": {"ready": {"pods": {"namespace": namespace, "selector": selector},
                             "every": "250ms", "timeout": "5s"}},
        "method": [step],
        "recovery": f"{entry.interval:g}s",
        "max_duration": f"{BASELINE + entry.duration + entry.interval + 600:g}s",
    }
    if entry.interval > 0:
        # Seed 002's interval is the time the system gets to recover: the pods Ready again by then.
        doc["hypothesis"] = {"time_to_recovery": {"max": f"{entry.interval:g}s"}}
    return doc
