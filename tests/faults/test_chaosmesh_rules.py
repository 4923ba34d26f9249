"""Chaos Mesh's admission webhook, rule by rule, without a cluster.

Every ``chaosmesh.*`` step that Chaos Mesh's webhook (or its CRD, or the Go type a field is
decoded into) would refuse is refused by ``chaoslab validate`` first: exit 2, one line
``file:line:col: method[i].field: message`` with Chaos Mesh's reason. The rules were read from
Chaos Mesh's api/v1alpha1 (``*_webhook.go``, ``*_types.go``, ``common_webhook.go``) and its CRDs
(v2.8.3 and main). The steps it accepts are built into the exact object chaoslab creates, and
the strings in it are the ones Chaos Mesh parses (``300us``, not ``0ms``; ``0.00001``, not
``1e-05``). One ``chaoslab validate`` process checks every file (one file per rule) so the
module costs one interpreter start, not sixty.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chaoslab import faults
from chaoslab.errors import FaultError
from chaoslab.platforms import chaosmesh as cm
from chaoslab.targets import ResolvedTarget

TARGET = '{pod: {namespace: shop, selector: "app=web"}, mode: all}'


def experiment(fault: str, params: str) -> str:
    """A file whose one step keeps its own keys (``params``, a flow mapping's inside) on line 6."""
    return f"""title: webhook rule
targets:
  web: {TARGET}
method:
  - {{fault: {fault}, target: web, at: 0s, duration: 5s,
     {params}}}
"""


# (id, fault, the step's own keys as one YAML flow line, the field refused, Chaos Mesh's reason)
REFUSED: list[tuple[str, str, str, str, str]] = [
    # NetworkChaosSpec.Validate: netem actions need a target for `from` and `both`.
    ("delay-from-without-peer", "chaosmesh.network_delay", "{latency: 10ms, direction: from}",
     "direction", "`from` and `both` direction cannot be used when targets is empty in netem action"),
    ("delay-both-without-peer", "chaosmesh.network_delay", "{latency: 10ms, direction: both}",
     "direction", "`from` and `both` direction cannot be used when targets is empty in netem action"),
    ("loss-from-without-peer", "chaosmesh.network_loss", "{loss: 5, direction: from}",
     "direction", "`from` and `both` direction cannot be used when targets is empty in netem action"),
    ("bandwidth-both-without-peer", "chaosmesh.network_bandwidth", "{rate: 1mbps, direction: both}",
     "direction", "`from` and `both` direction cannot be used when targets is empty in netem action"),
    # Rate.Validate: a whole number (strconv.ParseUint) before a known unit.
    ("rate-fraction", "chaosmesh.network_bandwidth", "{rate: 1.5mbps}",
     "rate", "whole number"),
    ("rate-beyond-uint64", "chaosmesh.network_bandwidth", "{rate: 18446744073709551616bps}",
     "rate", "out of range"),
    ("rate-bytes-beyond-uint64", "chaosmesh.network_bandwidth", "{rate: 20000000tbps}",
     "rate", "64-bit"),
    ("rate-unknown-unit", "chaosmesh.network_bandwidth", "{rate: 10furlongs}",
     "rate", "invalid unit"),
    ("rate-zero", "chaosmesh.network_bandwidth", "{rate: 0mbps}",
     "rate", "at least 1 byte"),
    ("rate-below-one-byte", "chaosmesh.network_bandwidth", "{rate: 7bit}",
     "rate", "at least 1 byte"),
    # BandwidthSpec.Limit / Buffer: uint32, minimum 1.
    ("limit-beyond-uint32", "chaosmesh.network_bandwidth", "{rate: 1mbps, limit: 4294967296}",
     "limit", "uint32"),
    ("buffer-beyond-uint32", "chaosmesh.network_bandwidth", "{rate: 1mbps, buffer: 4294967296}",
     "buffer", "uint32"),
    ("limit-zero", "chaosmesh.network_bandwidth", "{rate: 1mbps, limit: 0}",
     "limit", "greater than or equal to 1"),
    ("buffer-zero", "chaosmesh.network_bandwidth", "{rate: 1mbps, buffer: 0}",
     "buffer", "greater than or equal to 1"),
    # DelaySpec: Go durations in whole nanoseconds; a delay of nothing is no fault.
    ("latency-zero", "chaosmesh.network_delay", "{latency: 0s}",
     "latency", "at least 1ns"),
    ("latency-below-1ns", "chaosmesh.network_delay", "{latency: 0.0001us}",
     "latency", "at least 1ns"),
    ("jitter-below-1ns", "chaosmesh.network_delay", "{latency: 1ms, jitter: 0.0001us}",
     "jitter", "whole nanoseconds"),
    # FloatStr correlations and percentages, 0-100.
    ("delay-correlation-over-100", "chaosmesh.network_delay", "{latency: 1ms, correlation: 101}",
     "correlation", "less than or equal to 100"),
    ("loss-correlation-negative", "chaosmesh.network_loss", "{loss: 5, correlation: -1}",
     "correlation", "greater than or equal to 0"),
    ("loss-over-100", "chaosmesh.network_loss", "{loss: 101}",
     "loss", "less than or equal to 100"),
    ("loss-zero", "chaosmesh.network_loss", "{loss: 0}",
     "loss", "greater than 0"),
    ("loss-below-daemon-resolution", "chaosmesh.network_loss", "{loss: 0.0000001}",
     "loss", "six decimals"),
    # Bytes.Validate: whole percentages 0-100, or a size go-units parses.
    ("memory-fraction-percent", "chaosmesh.stress_memory", "{size: 50.5%}",
     "size", "whole number"),
    ("memory-over-100-percent", "chaosmesh.stress_memory", "{size: 150%}",
     "size", "illegal proportion"),
    ("memory-zero-percent", "chaosmesh.stress_memory", "{size: 0%}",
     "size", "stresses nothing"),
    ("memory-zero-bytes", "chaosmesh.stress_memory", "{size: 0MB}",
     "size", "stresses nothing"),
    ("memory-bad-unit", "chaosmesh.stress_memory", "{size: 5 parsecs}",
     "size", "invalid size"),
    # Stressor: workers 1-8192 (the CRD's maximum); CPUStressor.Load 0-100.
    ("workers-zero", "chaosmesh.stress_cpu", "{workers: 0}",
     "workers", "greater than or equal to 1"),
    ("workers-over-8192", "chaosmesh.stress_memory", "{workers: 8193}",
     "workers", "less than or equal to 8192"),
    ("cpu-load-over-100", "chaosmesh.stress_cpu", "{load: 101}",
     "load", "less than or equal to 100"),
    # PodChaosSpec.Validate: container-kill needs container names; names are DNS labels.
    ("container-kill-no-names", "chaosmesh.container_kill", "{containers: []}",
     "containers", "at least 1 item"),
    ("container-name-not-a-label", "chaosmesh.stress_cpu", "{containers: [Main_App]}",
     "containers[0]", "not a container name"),
    ("container-kill-name-not-a-label", "chaosmesh.container_kill", "{containers: [app, -x]}",
     "containers[1]", "not a container name"),
    # IOChaos: IOErrno (fault needs errno != 0, uint32), Percent 0-100, Duration delay.
    ("io-errno-zero", "chaosmesh.io", "{volume_path: /data, action: fault, errno: 0}",
     "errno", "greater than or equal to 1"),
    ("io-percent-over-100", "chaosmesh.io", "{volume_path: /data, percent: 101}",
     "percent", "less than or equal to 100"),
    ("io-percent-zero", "chaosmesh.io", "{volume_path: /data, percent: 0}",
     "percent", "greater than or equal to 1"),
    ("io-latency-zero", "chaosmesh.io", "{volume_path: /data, delay: 0s}",
     "delay", "at least 1ns"),
    ("io-volume-path-relative", "chaosmesh.io", "{volume_path: data}",
     "volume_path", "absolute"),
    # TimeOffset.Validate: time.ParseDuration, which refuses more than 2^63-1 ns.
    ("time-offset-overflow", "chaosmesh.time", "{offset: 2562048h}",
     "offset", "invalid duration"),
    ("time-offset-bad-unit", "chaosmesh.time", "{offset: 10d}",
     "offset", "unknown unit"),
    ("time-offset-no-unit", "chaosmesh.time", "{offset: '10'}",
     "offset", "missing unit"),
    ("time-offset-zero", "chaosmesh.time", "{offset: 0s}",
     "offset", "shifts nothing"),
]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str] | str]:
    """Each case's file name -> the lines `chaoslab validate` printed for it ("ok" when it
    passed): one process for every file."""
    d = tmp_path_factory.mktemp("mesh")
    files = []
    for case, fault, params, _, _ in REFUSED:
        f = d / f"{case}.yaml"
        f.write_text(experiment(fault, params[1:-1]))
        files.append(f)
    for case, fault, params, _ in BUILT:
        f = d / f"ok-{case}.yaml"
        f.write_text(experiment(fault, _flow(params)))
        files.append(f)
    for mode in MODES_REFUSED:
        f = d / f"mode-{mode.replace(':', '-')}.yaml"
        f.write_text(experiment("chaosmesh.stress_cpu", "workers: 1").replace("mode: all", f"mode: '{mode}'"))
        files.append(f)
    out = subprocess.run(
        [sys.executable, "-m", "chaoslab", "validate", *map(str, files)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(d / "state")},
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    seen: dict[str, list[str] | str] = {}
    for line in out.stderr.splitlines():
        name = Path(line.split(":", 1)[0]).stem
        seen.setdefault(name, []).append(line)  # type: ignore[union-attr]
    for line in out.stdout.splitlines():
        if line.endswith(")") and ": ok (" in line:
            seen[Path(line.split(":", 1)[0]).stem] = "ok"
    return seen


def _flow(params: dict[str, Any]) -> str:
    """A step's own keys as the inside of a YAML flow mapping."""
    def one(v: Any) -> str:
        return str(yaml.safe_dump(v, default_flow_style=True)).strip().removesuffix("...").strip()
    return ", ".join(f"{k}: {one(v)}" for k, v in params.items())


@pytest.mark.parametrize(("case", "fault", "params", "field", "reason"), REFUSED, ids=[c[0] for c in REFUSED])
def test_validate_refuses_what_chaos_mesh_refuses(
    verdicts: dict[str, list[str] | str], case: str, fault: str, params: str, field: str, reason: str
) -> None:
    got = verdicts.get(case)
    assert got != "ok" and got, f"{fault} {params}: chaoslab validate accepted it, Chaos Mesh refuses it"
    assert isinstance(got, list) and len(got) == 1, got
    line = got[0]
    # file:line:col: method[0].field: message, on the line of the refused key
    m = re.match(r"^(?P<file>[^:]+):(?P<line>\d+):\d+: (?P<field>\S+): (?P<msg>.+)$", line)
    assert m, line
    assert m["file"].endswith(f"{case}.yaml") and m["line"] == "6", line
    assert m["field"] == f"method[0].{field}", line
    assert reason in m["msg"], line


MODES_REFUSED = ["percent:0", "percent:150", "count:0", "count:1.5"]
"""PodSelector.Validate refuses fixed <= 0 and percentages outside (0, 100]. chaoslab's resources
always say mode all (it chose the pods itself), so the same rules hold on the target's mode."""


@pytest.mark.parametrize("mode", MODES_REFUSED)
def test_target_modes_follow_chaos_meshs_value_rules(verdicts: dict[str, list[str] | str], mode: str) -> None:
    got = verdicts.get(f"mode-{mode.replace(':', '-')}")
    assert isinstance(got, list) and len(got) == 1, got
    assert re.search(r"\.yaml:3:\d+: targets\.web\.mode: (count|percent) must be", got[0]), got


# (id, fault, the step's own keys, the part of spec that chaoslab writes for them)
BUILT: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("delay-exact-durations", "chaosmesh.network_delay",
     {"latency": "300us", "jitter": "0.25ms", "correlation": 0.00001},
     {"action": "delay", "direction": "to",
      "delay": {"latency": "300us", "jitter": "250us", "correlation": "0.00001"}}),
    ("delay-seconds", "chaosmesh.network_delay", {"latency": "1.5s", "jitter": 0},
     {"delay": {"latency": "1500ms", "jitter": "0ms", "correlation": "0"}}),
    ("delay-minutes", "chaosmesh.network_delay", {"latency": "2m", "jitter": "0.5us"},
     {"delay": {"latency": "2m", "jitter": "500ns", "correlation": "0"}}),
    ("delay-from-with-peer", "chaosmesh.network_delay",
     {"latency": "10ms", "direction": "from", "peer": "app=db"},
     {"direction": "from", "target": {"mode": "all", "selector": {
         "namespaces": ["shop"], "labelSelectors": {"app": "db"}}}}),
    ("loss-tiny", "chaosmesh.network_loss", {"loss": 0.00001, "correlation": 12.5},
     {"loss": {"loss": "0.00001", "correlation": "12.5"}}),
    ("loss-whole", "chaosmesh.network_loss", {"loss": 20},
     {"loss": {"loss": "20", "correlation": "0"}}),
    ("partition-from-without-peer", "chaosmesh.network_partition", {"direction": "from"},
     {"action": "partition", "direction": "from", "target": {"mode": "all", "selector": {"namespaces": ["shop"]}}}),
    ("bandwidth-bit-units-and-uint32-limits", "chaosmesh.network_bandwidth",
     {"rate": "10mbit", "limit": 4294967295, "buffer": 4294967295},
     {"bandwidth": {"rate": "10mbit", "limit": 4294967295, "buffer": 4294967295}}),
    ("bandwidth-rate-spelled-loosely", "chaosmesh.network_bandwidth", {"rate": "100 KBps"},
     {"bandwidth": {"rate": "100kbps", "limit": 20971520, "buffer": 10000}}),
    ("memory-whole-percent", "chaosmesh.stress_memory", {"size": "100%", "containers": ["app"]},
     {"stressors": {"memory": {"workers": 1, "size": "100%"}}, "containerNames": ["app"]}),
    ("memory-bytes", "chaosmesh.stress_memory", {"size": "1.5GiB"},
     {"stressors": {"memory": {"workers": 1, "size": "1.5GiB"}}}),
    ("cpu-containers", "chaosmesh.stress_cpu", {"workers": 2, "load": 0, "containers": ["app", "sidecar"]},
     {"stressors": {"cpu": {"workers": 2, "load": 0}}, "containerNames": ["app", "sidecar"]}),
    ("io-containers", "chaosmesh.io", {"volume_path": "/data", "delay": "500us", "containers": ["app"]},
     {"action": "latency", "volumePath": "/data", "delay": "500us", "percent": 100, "containerNames": ["app"]}),
    ("io-fault", "chaosmesh.io", {"volume_path": "/data", "action": "fault", "errno": 28, "percent": 50},
     {"action": "fault", "volumePath": "/data", "errno": 28, "percent": 50}),
    ("time-go-offsets", "chaosmesh.time", {"offset": "-1h30m0.5s", "containers": ["app"]},
     {"timeOffset": "-1h30m0.5s", "clockIds": ["CLOCK_REALTIME"], "containerNames": ["app"]}),
    ("time-microseconds", "chaosmesh.time", {"offset": "+300us"},
     {"timeOffset": "+300us"}),
    ("container-kill", "chaosmesh.container_kill", {"containers": ["app"]},
     {"action": "container-kill", "containerNames": ["app"]}),
]


def pod_target(containers: list[str] | None = None) -> ResolvedTarget:
    pods = [{"name": f"web-{i}", "uid": f"u{i}", "containers": [{"name": c} for c in (containers or [])]}
            for i in (1, 2)]
    return ResolvedTarget(name="web", kind="pod", spec={}, extra={"namespace": "shop", "pods": pods})


def build(fault: str, params: dict[str, Any], target: ResolvedTarget | None = None,
          planned: float | None = 5.0) -> dict[str, Any]:
    cls = faults.get(fault)
    f = cls(cls.Params.model_validate(params), target or pod_target(["app", "sidecar"]), run_id="r1")
    f.planned_duration = planned
    obj: dict[str, Any] = f.resource("chaoslab-r1-x", "r1")  # type: ignore[attr-defined]
    return obj


@pytest.mark.parametrize(("case", "fault", "params", "spec"), BUILT, ids=[c[0] for c in BUILT])
def test_accepted_steps_write_the_strings_chaos_mesh_parses(
    verdicts: dict[str, list[str] | str], case: str, fault: str, params: dict[str, Any], spec: dict[str, Any]
) -> None:
    assert verdicts.get(f"ok-{case}") == "ok", verdicts.get(f"ok-{case}")
    obj = build(fault, params)
    for key, value in spec.items():
        assert obj["spec"].get(key) == value, (key, obj["spec"])
    assert obj["spec"]["mode"] == "all"
    assert obj["spec"]["selector"] == {"pods": {"shop": ["web-1", "web-2"]}}
    # The safety net: the step's 5 s plus 30 s, as a Go duration in the CRDs' one-unit form.
    assert obj["spec"]["duration"] == "35s"


def test_containers_are_written_for_every_kind_that_takes_them() -> None:
    """StressChaos, IOChaos and TimeChaos act on each pod's first container unless told:
    every fault of those kinds takes `containers` and writes spec.containerNames."""
    takes = {name for name, cls in faults.all_faults().items()
             if name.startswith("chaosmesh.") and "containers" in cls.Params.model_fields}
    assert takes == {"chaosmesh.container_kill", "chaosmesh.stress_cpu", "chaosmesh.stress_memory",
                     "chaosmesh.io", "chaosmesh.time"}
    # without it, nothing is written and Chaos Mesh picks the first container, as documented
    assert "containerNames" not in build("chaosmesh.stress_cpu", {})["spec"]


def test_a_container_missing_from_a_chosen_pod_is_refused_before_anything_is_created() -> None:
    cls = faults.get("chaosmesh.stress_cpu")
    f = cls(cls.Params.model_validate({"containers": ["app", "cache"]}), pod_target(["app", "sidecar"]))
    with pytest.raises(FaultError, match=r"web-1 has no container 'cache' \(its containers: app, sidecar\)"):
        f.resource("n", "r")  # type: ignore[attr-defined]
    # a pod whose containers are not known yet (pending) is left to Chaos Mesh
    assert build("chaosmesh.stress_cpu", {"containers": ["cache"]}, pod_target())["spec"]["containerNames"] == ["cache"]


def test_run_refuses_the_step_before_anything_is_injected(tmp_path: Path) -> None:
    """`chaoslab run` loads the file like validate: exit 2, the same one line, no run started
    and no ledger entry (the pod target is never even resolved: no cluster is needed)."""
    f = tmp_path / "bad.yaml"
    f.write_text(experiment("chaosmesh.network_bandwidth", "rate: 1.5mbps"))
    state = tmp_path / "state"
    out = subprocess.run(
        [sys.executable, "-m", "chaoslab", "run", str(f), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(state)},
    )
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{f}:6:") and "method[0].rate" in lines[0], out.stderr
    assert "whole number" in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert not list(state.glob("ledger/*/*.json"))


# -- The test CRDs (tests/platforms/kubernetes installs them) and the stand-in's status ------


def _schema(kind: str) -> dict[str, Any]:
    (crd,) = [c for c in cm.crd_manifests() if c["spec"]["names"]["kind"] == kind]
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_schema(obj["kind"]))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def _with(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(obj))
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return out


GOOD = {
    "delay": ("chaosmesh.network_delay", {"latency": "300us"}),
    "bandwidth": ("chaosmesh.network_bandwidth", {"rate": "1mbps"}),
    "memory": ("chaosmesh.stress_memory", {"size": "50%"}),
    "time": ("chaosmesh.time", {"offset": "-10m"}),
}


@pytest.mark.parametrize(("base", "path", "value"), [
    ("delay", "spec.direction", "from"),
    ("delay", "spec.direction", "both"),
    ("bandwidth", "spec.direction", "both"),
    ("bandwidth", "spec.bandwidth.rate", "1.5mbps"),
    ("bandwidth", "spec.bandwidth.limit", 4294967296),
    ("memory", "spec.stressors.memory.size", "50.5%"),
    ("memory", "spec.stressors.memory.size", "150%"),
    ("delay", "spec.delay.latency", "1e-05s"),
    ("time", "spec.timeOffset", "10d"),
], ids=lambda v: str(v))
def test_test_crds_refuse_what_the_webhook_refuses(base: str, path: str, value: Any) -> None:
    """The stand-ins for Chaos Mesh's CRD and webhook on the test cluster: every resource of the
    issue's eight (and a few more) is refused by the schema, and chaoslab's own are accepted."""
    fault, params = GOOD[base]
    good = build(fault, params)
    assert _errors(good) == []
    assert _errors(_with(good, path, value)), f"the test CRD accepts {path}={value!r}"


def test_stand_in_status_has_the_real_crds_required_shape() -> None:
    """Chaos Mesh's CRDs require status.experiment (and, in a record, id, selectorKey, phase and
    both counts); the stand-in writes what Chaos Mesh's controller writes, and the test CRDs
    refuse the bare conditions the stand-in used to write."""
    obj = build("chaosmesh.stress_cpu", {"containers": ["app"]})
    obj["status"] = cm.injected_status(obj)
    assert _errors(obj) == []
    assert cm.condition(obj, "AllInjected")
    records = obj["status"]["experiment"]["containerRecords"]
    assert [r["id"] for r in records] == ["shop/web-1/app", "shop/web-2/app"]
    assert {r["phase"] for r in records} == {"Injected"}
    bare = _with(obj, "status", {"conditions": obj["status"]["conditions"]})
    assert any("experiment" in e for e in _errors(bare)), _errors(bare)
    # The real CRDs have no status subresource: Chaos Mesh's controller updates the whole object.
    for crd in cm.crd_manifests():
        assert "status" not in crd["spec"]["versions"][0].get("subresources", {})
    assert yaml.safe_load(json.dumps(cm.crd_manifests())) == cm.crd_manifests()
