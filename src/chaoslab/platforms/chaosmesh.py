"""Chaos Mesh custom resources (group chaos-mesh.org, version v1alpha1): their CRDs and helpers.

chaoslab does not run fault agents in a cluster: for faults below the API (a container's
network, CPU, files, clock) it creates Chaos Mesh resources and lets Chaos Mesh's controller
and daemons act. The CRDs here stand in for Chaos Mesh's CRDs *and* its admission webhook
where Chaos Mesh is absent (the tests install them with ``crd_manifests()``; a cluster with
Chaos Mesh already has its own): the spec fields chaoslab sets with Chaos Mesh's enums and
types, plus what the webhook refuses that a schema can say (whole-number rates, uint32 limits,
whole percentages, Go durations, `from`/`both` without a target). Like Chaos Mesh's (v2.8.3),
they have no status subresource (its controller updates the whole object) and a status must
hold ``experiment``: ``injected_status()`` is that status, as the controller writes it.
"""

from __future__ import annotations

import datetime
from typing import Any

GROUP = "chaos-mesh.org"
VERSION = "v1alpha1"

# kind -> plural (Chaos Mesh's plurals are not English plurals)
KINDS = {
    "PodChaos": "podchaos",
    "NetworkChaos": "networkchaos",
    "StressChaos": "stresschaos",
    "IOChaos": "iochaos",
    "TimeChaos": "timechaos",
}

MODES = ["one", "all", "fixed", "fixed-percent", "random-max-percent"]
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
ONE_UNIT_DURATION = r"^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$"
"""Chaos Mesh's own CRD pattern for a delay's latency and jitter."""
GO_DURATION = r"^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$"
"""What Go's time.ParseDuration reads (the webhook also refuses more than 2^63-1 ns)."""
DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
RATE = r"^\s*[0-9]+\s*[kKmMgGtT]?([bB][pP][sS]|[bB][iI][tT])\s*$"
"""Rate.Validate: a whole number (strconv.ParseUint), then a unit (case and spaces ignored)."""
STRESS_SIZE = r"^(([0-9]|[1-9][0-9]|100)%|[0-9]+(\.[0-9]+)? ?([kKmMgGtTpP]([iI]?[bB])?|[bB])?)$"
"""Bytes.Validate: a whole percentage 0-100, or a size docker's go-units parses."""
UINT32_MAX = 2**32 - 1


def _s(kind: str, **kw: Any) -> dict[str, Any]:
    return {"type": kind, **kw}


def _str_list() -> dict[str, Any]:
    return _s("array", items=_s("string"))


def _str_map() -> dict[str, Any]:
    return _s("object", additionalProperties=_s("string"))


SELECTOR = _s("object", properties={
    "namespaces": _str_list(),
    "nodes": _str_list(),
    "pods": _s("object", additionalProperties=_str_list()),
    "nodeSelectors": _str_map(),
    "fieldSelectors": _str_map(),
    "labelSelectors": _str_map(),
    "annotationSelectors": _str_map(),
    "podPhaseSelectors": _s("array", items=_s("string", enum=["Pending", "Running", "Succeeded", "Failed", "Unknown"])),
})

COMMON = {
    "selector": SELECTOR,
    "mode": _s("string", enum=MODES),
    "value": _s("string"),
    "duration": _s("string", pattern=DURATION_PATTERN),
}


def _spec(required: list[str], containers: bool = True, **props: Any) -> dict[str, Any]:
    # containerNames: the kinds with Chaos Mesh's ContainerSelector (all but NetworkChaos)
    more = {"containerNames": _str_list()} if containers else {}
    return _s("object", required=["selector", "mode", *required], properties={**COMMON, **more, **props})


NETEM_NEEDS_TARGET = [
    # NetworkChaosSpec.Validate: "`from` and `both` direction cannot be used when targets is empty
    # in netem action". Value validations only (a structural schema allows them inside anyOf):
    # the direction is absent or `to`, or the action is partition, or there is a target.
    {"not": {"required": ["direction"]}},
    {"properties": {"direction": {"enum": ["to"]}}},
    {"properties": {"action": {"enum": ["partition"]}}},
    {"required": ["target"]},
]


SPECS: dict[str, dict[str, Any]] = {
    "PodChaos": _spec(
        ["action"],
        action=_s("string", enum=["pod-kill", "pod-failure", "container-kill"]),
        gracePeriod=_s("integer", minimum=0),
    ),
    "NetworkChaos": _spec(
        ["action"],
        containers=False,
        action=_s("string", enum=["netem", "delay", "loss", "duplicate", "corrupt", "partition", "bandwidth"]),
        direction=_s("string", enum=["to", "from", "both"]),
        target=_s("object", required=["selector", "mode"], properties={
            "selector": SELECTOR, "mode": _s("string", enum=MODES), "value": _s("string")}),
        externalTargets=_str_list(),
        delay=_s("object", required=["latency"], properties={
            "latency": _s("string", pattern=ONE_UNIT_DURATION),
            "jitter": _s("string", pattern=ONE_UNIT_DURATION),
            "correlation": _s("string", pattern=DECIMAL),
            "reorder": _s("object", properties={"reorder": _s("string"), "correlation": _s("string"),
                                                "gap": _s("integer")}),
        }),
        loss=_s("object", required=["loss"], properties={
            "loss": _s("string", pattern=DECIMAL),
            "correlation": _s("string", pattern=DECIMAL),
        }),
        bandwidth=_s("object", required=["rate", "limit", "buffer"], properties={
            "rate": _s("string", pattern=RATE),
            # Go uint32 fields: the webhook cannot decode a larger number
            "limit": _s("integer", format="int32", minimum=1, maximum=UINT32_MAX),
            "buffer": _s("integer", format="int32", minimum=1, maximum=UINT32_MAX),
            "peakrate": _s("integer", format="int64", minimum=0),
            "minburst": _s("integer", format="int32", minimum=0, maximum=UINT32_MAX),
        }),
    ) | {"anyOf": NETEM_NEEDS_TARGET},
    "StressChaos": _spec(
        ["stressors"],
        stressors=_s("object", properties={
            "cpu": _s("object", required=["workers"], properties={
                "workers": _s("integer", minimum=1, maximum=8192),
                "load": _s("integer", minimum=0, maximum=100),
                "options": _str_list()}),
            "memory": _s("object", required=["workers"], properties={
                "workers": _s("integer", minimum=1, maximum=8192),
                "size": _s("string", pattern=STRESS_SIZE),
                "options": _str_list()}),
        }),
        stressngStressors=_s("string"),
    ),
    "IOChaos": _spec(
        ["action", "volumePath"],
        action=_s("string", enum=["latency", "fault", "attrOverride", "mistake"]),
        volumePath=_s("string", minLength=1),
        path=_s("string"),
        delay=_s("string", pattern=GO_DURATION),
        errno=_s("integer", format="int32", minimum=0, maximum=UINT32_MAX),
        percent=_s("integer", minimum=0, maximum=100),
        methods=_s("array", items=_s("string", enum=[
            "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir",
            "symlink", "rename", "link", "open", "read", "write", "statfs", "release", "fsync",
            "setxattr", "getxattr", "listxattr", "removexattr", "flush", "opendir", "readdir",
            "releasedir", "fsyncdir", "access", "create", "getlk", "setlk", "bmap"])),
    ),
    "TimeChaos": _spec(
        ["timeOffset"],
        timeOffset=_s("string", pattern=GO_DURATION),
        clockIds=_s("array", items=_s("string", enum=[
            "CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID", "CLOCK_THREAD_CPUTIME_ID",
            "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE", "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME"])),
    ),
}

STATUS = _s("object", required=["experiment"], properties={
    "conditions": _s("array", items=_s("object", required=["type", "status"], properties={
        "type": _s("string", enum=["Selected", "AllInjected", "AllRecovered", "Paused"]),
        "status": _s("string", enum=["True", "False", "Unknown"]),
        "reason": _s("string"),
    })),
    # ChaosStatus.Experiment, required by Chaos Mesh's CRDs, with its records' required fields
    "experiment": _s("object", properties={
        "desiredPhase": _s("string", enum=["Run", "Stop"]),
        "containerRecords": _s("array", items=_s(
            "object", required=["id", "selectorKey", "phase", "injectedCount", "recoveredCount"], properties={
                "id": _s("string"), "selectorKey": _s("string"), "phase": _s("string"),
                "injectedCount": _s("integer"), "recoveredCount": _s("integer"),
                "events": _s("array", items=_s("object", required=["type", "operation", "timestamp"], properties={
                    "type": _s("string"), "operation": _s("string"), "message": _s("string"),
                    "timestamp": _s("string", format="date-time"),
                })),
            })),
    }),
    # each kind's own status (instances: generations, stress-ng ids)
    "instances": _s("object", x_preserve=True),
})


def _fix(schema: Any) -> Any:
    """Python-friendly spellings -> the OpenAPI keys (x-kubernetes-preserve-unknown-fields)."""
    if isinstance(schema, dict):
        out = {}
        for k, v in schema.items():
            if k == "x_preserve":
                out["x-kubernetes-preserve-unknown-fields"] = v
            else:
                out[k] = _fix(v)
        return out
    if isinstance(schema, list):
        return [_fix(v) for v in schema]
    return schema


def crd_manifests() -> list[dict[str, Any]]:
    """apiextensions.k8s.io/v1 CRDs for the five kinds chaoslab creates."""
    out = []
    for kind, plural in KINDS.items():
        out.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {
                "group": GROUP,
                "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": plural, "listKind": f"{kind}List"},
                "versions": [{
                    "name": VERSION, "served": True, "storage": True,
                    # none, as in Chaos Mesh's CRDs: its controller updates the whole object
                    "subresources": {},
                    "schema": {"openAPIV3Schema": _fix(_s("object", required=["spec"], properties={
                        "apiVersion": _s("string"), "kind": _s("string"), "metadata": _s("object"),
                        "spec": SPECS[kind], "status": STATUS,
                    }))},
                }],
            },
        })
    return out


def condition(obj: dict[str, Any], kind: str) -> bool:
    """Whether a Chaos Mesh object's status has condition ``kind`` set to True."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return True
    return False


def injected_status(obj: dict[str, Any]) -> dict[str, Any]:
    """The status Chaos Mesh's controller writes once it injected every target of ``obj`` (one
    record per selected pod, or per pod and named container; ids as Chaos Mesh forms them). The
    tests' stand-in for the controller writes it, since the controller cannot run there."""
    spec = obj["spec"]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = []
    for ns, pods in sorted((spec.get("selector", {}).get("pods") or {}).items()):
        for pod in pods:
            names = spec.get("containerNames") or []
            ids += [f"{ns}/{pod}/{c}" for c in names] if names else [f"{ns}/{pod}"]
    records = [{
        "id": i, "selectorKey": ".", "phase": "Injected", "injectedCount": 1, "recoveredCount": 0,
        "events": [{"type": "Succeeded", "operation": "Apply", "timestamp": now}],
    } for i in ids]
    return {
        "conditions": [
            {"type": "Selected", "status": "True"},
            {"type": "AllInjected", "status": "True"},
            {"type": "AllRecovered", "status": "False"},
            {"type": "Paused", "status": "False"},
        ],
        "experiment": {"desiredPhase": "Run", "containerRecords": records},
    }
