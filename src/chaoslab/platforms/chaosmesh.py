"""Chaos Mesh custom resources (group chaos-mesh.org, version v1alpha1): their CRDs and helpers.

chaoslab does not run fault agents in a cluster: for faults below the API (a container's
network, CPU, files, clock) it creates Chaos Mesh resources and lets Chaos Mesh's controller
and daemons act. The CRDs here are written from Chaos Mesh's documented API (the spec fields
chaoslab sets, with their enums and types) and are strict: a resource with a wrong action,
mode, direction or type is refused by the API server. Install them where Chaos Mesh is absent
(the tests) with ``crd_manifests()``; a cluster with Chaos Mesh already has its own.
"""

from __future__ import annotations

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
    "containerNames": _str_list(),
}


def _spec(required: list[str], **props: Any) -> dict[str, Any]:
    return _s("object", required=["selector", "mode", *required], properties={**COMMON, **props})


SPECS: dict[str, dict[str, Any]] = {
    "PodChaos": _spec(
        ["action"],
        action=_s("string", enum=["pod-kill", "pod-failure", "container-kill"]),
        gracePeriod=_s("integer", minimum=0),
    ),
    "NetworkChaos": _spec(
        ["action"],
        action=_s("string", enum=["netem", "delay", "loss", "duplicate", "corrupt", "partition", "bandwidth"]),
        direction=_s("string", enum=["to", "from", "both"]),
        target=_s("object", required=["selector", "mode"], properties={
            "selector": SELECTOR, "mode": _s("string", enum=MODES), "value": _s("string")}),
        externalTargets=_str_list(),
        delay=_s("object", required=["latency"], properties={
            "latency": _s("string", pattern=DURATION_PATTERN),
            "jitter": _s("string", pattern=DURATION_PATTERN),
            "correlation": _s("string", pattern=r"^[0-9]+(\.[0-9]+)?$"),
            "reorder": _s("object", properties={"reorder": _s("string"), "correlation": _s("string"),
                                                "gap": _s("integer")}),
        }),
        loss=_s("object", required=["loss"], properties={
            "loss": _s("string", pattern=r"^[0-9]+(\.[0-9]+)?$"),
            "correlation": _s("string", pattern=r"^[0-9]+(\.[0-9]+)?$"),
        }),
        bandwidth=_s("object", required=["rate", "limit", "buffer"], properties={
            "rate": _s("string", pattern=r"^[1-9][0-9]*(\.[0-9]+)?(bps|kbps|mbps|gbps|tbps)$"),
            "limit": _s("integer", minimum=1),
            "buffer": _s("integer", minimum=1),
            "peakrate": _s("integer", minimum=0),
            "minburst": _s("integer", minimum=0),
        }),
    ),
    "StressChaos": _spec(
        ["stressors"],
        stressors=_s("object", properties={
            "cpu": _s("object", required=["workers"], properties={
                "workers": _s("integer", minimum=1, maximum=8192),
                "load": _s("integer", minimum=0, maximum=100),
                "options": _str_list()}),
            "memory": _s("object", required=["workers"], properties={
                "workers": _s("integer", minimum=1, maximum=8192),
                "size": _s("string", pattern=r"^[0-9]+(\.[0-9]+)?(%|B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$"),
                "options": _str_list()}),
        }),
        stressngStressors=_s("string"),
    ),
    "IOChaos": _spec(
        ["action", "volumePath"],
        action=_s("string", enum=["latency", "fault", "attrOverride", "mistake"]),
        volumePath=_s("string", minLength=1),
        path=_s("string"),
        delay=_s("string", pattern=DURATION_PATTERN),
        errno=_s("integer", minimum=0),
        percent=_s("integer", minimum=0, maximum=100),
        methods=_s("array", items=_s("string", enum=[
            "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir",
            "symlink", "rename", "link", "open", "read", "write", "statfs", "release", "fsync",
            "setxattr", "getxattr", "listxattr", "removexattr", "flush", "opendir", "readdir",
            "releasedir", "fsyncdir", "access", "create", "getlk", "setlk", "bmap"])),
    ),
    "TimeChaos": _spec(
        ["timeOffset"],
        timeOffset=_s("string", pattern=r"^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"),
        clockIds=_s("array", items=_s("string", enum=[
            "CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID", "CLOCK_THREAD_CPUTIME_ID",
            "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE", "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME"])),
    ),
}

STATUS = _s("object", properties={
    "conditions": _s("array", items=_s("object", required=["type", "status"], properties={
        "type": _s("string", enum=["Selected", "AllInjected", "AllRecovered", "Paused"]),
        "status": _s("string", enum=["True", "False", "Unknown"]),
        "reason": _s("string"),
    })),
    "experiment": _s("object", x_preserve=True),
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
                    "subresources": {"status": {}},
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
