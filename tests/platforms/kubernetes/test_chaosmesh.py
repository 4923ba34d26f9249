"""Chaos Mesh resources: strict CRDs on the real API server, and the fault lifecycle.

Chaos Mesh's controller cannot run on this machine (no image registry, no privileged
daemons), so the tests named ``..._controller_played_by_test`` play its part: a thread sets the
``AllInjected`` status condition through the status subresource, as the controller would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chaoslab import faults
from chaoslab.platforms import chaosmesh as cm
from chaoslab.targets import TargetSpec, resolve

from .conftest import Cluster, ControllerStandIn, recover, run_and_sigkill, wait_until

PY = sys.executable


def validate(tmp_path: Path, steps: str) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "exp.yaml"
    f.write_text(f"""title: mesh
targets:
  p: {{pod: {{namespace: default, selector: "app=a"}}, mode: all}}
method:
{steps}
""")
    return subprocess.run(
        [PY, "-m", "chaoslab", "validate", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")},
    )


def test_malformed_chaosmesh_step_is_rejected_at_validate_with_line_and_field(
    tmp_path: Path,
) -> None:
    out = validate(
        tmp_path,
        "  - {fault: chaosmesh.network_delay, target: p, at: 0s, duration: 5s,\n"
        "     latency: 100ms, direction: sideways}\n",
    )
    assert out.returncode == 2
    assert "exp.yaml:6:" in out.stderr and "method[0].direction" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    ok = validate(
        tmp_path,
        "  - {fault: chaosmesh.network_delay, target: p, at: 0s, duration: 5s, latency: 100ms}\n",
    )
    assert ok.returncode == 0, ok.stderr


def _create(cluster: Cluster, ns: str, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "create", "-n", ns, "-f", "-"],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.k8s
@pytest.mark.slow
def test_api_server_accepts_good_and_rejects_malformed_resources(
    crds: Cluster, namespace: str
) -> None:
    base = {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "NetworkChaos",
        "metadata": {"name": "good"},
        "spec": {
            "selector": {"namespaces": [namespace]},
            "mode": "all",
            "action": "delay",
            "delay": {"latency": "100ms"},
        },
    }
    assert _create(crds, namespace, base).returncode == 0
    bad_action = json.loads(json.dumps(base))
    bad_action["metadata"]["name"] = "bad-action"
    bad_action["spec"]["action"] = "explode"
    out = _create(crds, namespace, bad_action)
    assert (
        out.returncode != 0 and "spec.action" in out.stderr and "Unsupported value" in out.stderr
    ), out.stderr
    bad_latency = json.loads(json.dumps(base))
    bad_latency["metadata"]["name"] = "bad-latency"
    bad_latency["spec"]["delay"] = {"latency": "soon"}
    out = _create(crds, namespace, bad_latency)
    assert out.returncode != 0 and "spec.delay.latency" in out.stderr, out.stderr
    names = [o["metadata"]["name"] for o in crds.get("networkchaos", "-n", namespace)["items"]]
    assert names == ["good"]


@pytest.mark.k8s
@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "params", "plural"),
    [
        ("chaosmesh.container_kill", {"containers": ["main"]}, "podchaos"),
        ("chaosmesh.network_delay", {"latency": "50ms", "jitter": "5ms"}, "networkchaos"),
        ("chaosmesh.network_loss", {"loss": 20}, "networkchaos"),
        ("chaosmesh.network_partition", {"peer": "app=other"}, "networkchaos"),
        ("chaosmesh.network_bandwidth", {"rate": "1mbps"}, "networkchaos"),
        ("chaosmesh.stress_cpu", {"workers": 1, "load": 50, "containers": ["main"]}, "stresschaos"),
        ("chaosmesh.stress_memory", {"size": "64MB"}, "stresschaos"),
        ("chaosmesh.io", {"volume_path": "/data", "delay": "20ms"}, "iochaos"),
        ("chaosmesh.time", {"offset": "-10m"}, "timechaos"),
    ],
)
def test_fault_creates_waits_and_deletes_controller_played_by_test(
    crds: Cluster, namespace: str, k8s_state: Path, fault: str, params: dict[str, Any], plural: str
) -> None:
    crds.deployment(namespace, "mesh", replicas=1)
    tgt = resolve(
        "mesh", TargetSpec.model_validate({"pod": {"namespace": namespace, "selector": "app=mesh"}})
    )
    cls = faults.get(fault)
    f = cls(cls.Params.model_validate({**params, "inject_timeout": "60s"}), tgt, run_id="meshtest")
    f.planned_duration = 5.0  # the step's, as the runner sets it
    with ControllerStandIn(crds, namespace, [plural]):
        try:
            t0 = time.monotonic()
            f.inject()
            assert time.monotonic() - t0 < 60
            items = crds.get(plural, "-n", namespace)["items"]
            assert [o["metadata"]["uid"] for o in items] == [f.state["uid"]]
            # Chaos Mesh's own end, a safety net 30 s past the step's (chaoslab deletes on time).
            assert items[0]["spec"]["duration"] == "35s"
            if "containers" in params:
                assert items[0]["spec"]["containerNames"] == params["containers"]
            # the stand-in's status, as Chaos Mesh's controller writes it, passed the CRD
            assert crds.get(plural, "-n", namespace)["items"][0]["status"]["experiment"]["desiredPhase"] == "Run"
            assert items[0]["spec"]["selector"]["pods"] == {
                namespace: [tgt.extra["pods"][0]["name"]]
            }
        finally:
            f.revert()
    assert wait_until(lambda: crds.get(plural, "-n", namespace)["items"] == [], 30)


@pytest.mark.k8s
@pytest.mark.slow
def test_inject_times_out_without_a_controller_and_revert_deletes(
    crds: Cluster, namespace: str, k8s_state: Path
) -> None:
    crds.deployment(namespace, "lonely", replicas=1)
    tgt = resolve(
        "l", TargetSpec.model_validate({"pod": {"namespace": namespace, "selector": "app=lonely"}})
    )
    cls = faults.get("chaosmesh.time")
    f = cls(
        cls.Params.model_validate({"offset": "1h", "inject_timeout": "2s"}), tgt, run_id="meshtest"
    )
    with pytest.raises(Exception, match="did not report TimeChaos"):
        f.inject()
    (made,) = crds.get("timechaos", "-n", namespace)["items"]
    assert "duration" not in made["spec"], "no step duration known, no safety net"
    f.revert()
    assert wait_until(lambda: crds.get("timechaos", "-n", namespace)["items"] == [], 30)


@pytest.mark.k8s
@pytest.mark.slow
def test_resource_deleted_by_recover_after_sigkill_controller_played_by_test(
    crds: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    """SIGKILL of the runner while a NetworkChaos is injected leaves the resource (and so the
    fault) in the cluster; `chaoslab recover` deletes it from the ledger, by uid. A thread plays
    Chaos Mesh's controller (it cannot run here)."""
    crds.deployment(namespace, "meshk", replicas=1)

    def injected() -> bool:
        items = crds.get("networkchaos", "-n", namespace)["items"]
        return len(items) == 1 and bool(cm.condition(items[0], "AllInjected"))

    with ControllerStandIn(crds, namespace, ["networkchaos"]):
        record = run_and_sigkill(
            k8s_state,
            tmp_path,
            "{fault: chaosmesh.network_delay, target: t, at: 0s, duration: 120s, latency: 50ms}",
            f"{{pod: {{namespace: {namespace}, selector: 'app=meshk'}}, mode: all, "
            f"kubeconfig: {crds.kubeconfig}}}",
            injected,
        )
    time.sleep(1)
    items = crds.get("networkchaos", "-n", namespace)["items"]
    assert len(items) == 1, "SIGKILL of the runner left the fault in the cluster"
    assert record["state"]["uid"] == items[0]["metadata"]["uid"]
    recover(k8s_state)
    assert wait_until(lambda: crds.get("networkchaos", "-n", namespace)["items"] == [], 30)
