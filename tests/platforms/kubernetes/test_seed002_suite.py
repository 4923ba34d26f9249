"""Seed 002's JSON suite format, copied unchanged from the seed, through `chaoslab suite`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaoslab.runner.suite import load_suite

from .conftest import POD_SPEC, Cluster, ControllerStandIn, wait_until

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "kubernetes" / "seed002-suite.json"
PY = sys.executable


def test_seed_example_loads_as_two_kubernetes_experiments() -> None:
    loaded = load_suite(EXAMPLE, {"NAMESPACE": "shop", "SELECTOR": "app=db"})
    assert loaded.suite.name == "Example Chaos Experiment Suite"
    (e1, x1), (e2, x2) = loaded.experiments
    assert e1.name == "Memory Exhaustion Test" and e2.name == "Network Partition Test"
    step1 = yaml.safe_load(Path(e1.path).read_text())["method"][0]
    assert step1["fault"] == "chaosmesh.stress_memory" and step1["size"] == "512MB"  # medium
    assert x1.experiment.method[0].duration == 60 and x1.experiment.recovery == 30
    spec = x2.experiment.targets["pods"]
    assert spec.pod is not None and spec.pod.namespace == "shop" and spec.pod.selector == "app=db"
    assert spec.mode == "percent:50" and spec.pod.seed is not None  # a random share, seeded
    assert x2.experiment.method[0].fault == "chaosmesh.network_partition"


def test_bad_intensity_is_one_line_with_position(tmp_path: Path) -> None:
    bad = tmp_path / "suite.json"
    bad.write_text(EXAMPLE.read_text().replace('"medium"', '"extreme"'))
    out = subprocess.run(
        [PY, "-m", "chaoslab", "suite", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")},
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"{bad}:5:5: experiments[0]: params.intensity: Input should be 'low', 'medium' or 'high'"
    ), out.stderr


def _suite_run(
    suite: Path, namespace: str, sel: str, k8s_state: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            PY,
            "-m",
            "chaoslab",
            "suite",
            "run",
            str(suite),
            "--var",
            f"NAMESPACE={namespace}",
            "--var",
            f"SELECTOR={sel}",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(k8s_state)},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.k8s
@pytest.mark.slow
@pytest.mark.timeout(600)  # the file asks for 3 min of faults and recovery
def test_seed_example_runs_unchanged_on_the_cluster_controller_played_by_test(
    crds: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    """Seed 002's example file, byte for byte, through `chaoslab suite run` against four pods of a
    test-created deployment: a StressChaos (memory, medium = 512MB) for 60 s, then a NetworkChaos
    partitioning a random half of the pods from the rest for 45 s, each followed by 30 s of
    recovery. Chaos Mesh's controller cannot run here; a thread plays it (it marks each resource
    injected). Everything the suite created is gone at the end, and the pods are untouched."""
    sel = crds.deployment(namespace, "shop", replicas=4)
    before = sorted(p["metadata"]["uid"] for p in crds.ready_pods(namespace, sel))
    with ControllerStandIn(crds, namespace, ["stresschaos", "networkchaos"]) as controller:
        t0 = time.monotonic()
        out = _suite_run(EXAMPLE, namespace, sel, k8s_state, tmp_path)
        wall = time.monotonic() - t0
    print(f"seed 002 suite on the cluster: exit {out.returncode} in {wall:.1f} s")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert 175 <= wall < 420, wall  # 5 + 60 + 30 + 5 + 45 + 30 s, plus start-up

    # What the suite asked Chaos Mesh for, as the API server stored it.
    made = sorted(controller.seen.values(), key=lambda o: o["metadata"]["creationTimestamp"])
    assert [o["kind"] for o in made] == ["StressChaos", "NetworkChaos"], made
    stress, partition = made
    assert stress["spec"]["stressors"]["memory"]["size"] == "512MB"
    # Chaos Mesh would end each fault itself 30 s after its step, were the runner to die.
    assert stress["spec"]["duration"] == "90s" and partition["spec"]["duration"] == "75s"
    assert sorted(stress["spec"]["selector"]["pods"][namespace]) == sorted(
        p["metadata"]["name"] for p in crds.pods(namespace, sel)
    )
    assert partition["spec"]["action"] == "partition" and partition["spec"]["direction"] == "both"
    assert len(partition["spec"]["selector"]["pods"][namespace]) == 2  # a random 50 % of four

    # Each experiment ran its fault for the file's duration and reverted it.
    suite_dir = next((tmp_path / "runs").glob("suite-*"))
    runs = sorted(p for p in suite_dir.iterdir() if p.is_dir())
    assert len(runs) == 2, runs
    for run, (fault, duration) in zip(
        runs, [("chaosmesh.stress_memory", 60), ("chaosmesh.network_partition", 45)], strict=True
    ):
        journal = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
        faults = [r for r in journal if r.get("type") == "fault"]
        inj = [r for r in faults if r.get("action") == "inject" and r.get("fault") == fault]
        rev = [r for r in faults if r.get("action") == "revert" and r.get("fault") == fault]
        assert len(inj) == 1 and len(rev) == 1, faults
        # After a 5 s baseline: injected once Chaos Mesh said so, reverted `duration` after.
        assert 5 <= inj[0]["t"] < 20 and duration + 4 <= rev[0]["t"] <= duration + 20, (inj, rev)
        # The pods probe saw all four Ready throughout (the stand-in touches no pod), so the
        # hypothesis (Ready again within the interval) held with nothing to recover from.
        metrics = json.loads((run / "analysis.json").read_text())["metrics"]
        assert metrics["probe.ready.value.min"] == 4 and metrics["time_to_recovery"] == 0

    # Nothing left: no Chaos Mesh resource, no ledger entry, the same four pods Ready.
    for plural in ("stresschaos", "networkchaos"):
        assert crds.get(plural, "-n", namespace)["items"] == [], plural
    assert not list((k8s_state / "ledger").glob("*/[0-9]*.json"))
    assert sorted(p["metadata"]["uid"] for p in crds.ready_pods(namespace, sel)) == before


def _run_seed_suite(
    tmp_path: Path, k8s_state: Path, entries: list[dict[str, Any]], namespace: str, sel: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "pods", "experiments": entries}))
    out = _suite_run(suite, namespace, sel, k8s_state, tmp_path)
    (analysis,) = (tmp_path / "runs").glob("suite-*/*/analysis.json")
    return out, json.loads(analysis.read_text())


@pytest.mark.k8s
@pytest.mark.slow
def test_seed_pod_delete_measures_recovery_from_the_pods_ready(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    """A seed-002 `pod-delete` on a two-replica deployment: the pods probe sees one Ready pod
    once the victim is terminating (detection), and two again once the ReplicaSet's replacement
    is Ready (recovery, at least its 3 s readiness delay), well within the entry's interval, so
    the suite HELD."""
    # Ready 3 s after start, as a service that loads before it serves: the outage outlasts
    # several probe samples (a bare busybox is Ready again within one second).
    sel = cluster.deployment(namespace, "rs", replicas=2, ready_after=3)
    entry = {
        "name": "Pod Delete",
        "type": "node_failure",
        "params": {"failure_type": "pod-delete"},
        "duration": 5,
        "interval": 20,
    }
    out, analysis = _run_seed_suite(tmp_path, k8s_state, [entry], namespace, sel)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    m = analysis["metrics"]
    assert m["probe.ready.value.min.baseline"] == 2 and m["probe.ready.value.min"] == 1, m
    assert m["detection_time"] is not None and m["detection_time"] < 5, m
    assert m["time_to_recovery"] is not None and 2.5 <= m["time_to_recovery"] < 20, m
    print(
        f"seed pod-delete: detected {m['detection_time']:.2f} s, Ready again "
        f"{m['time_to_recovery']:.2f} s after the delete"
    )
    assert wait_until(lambda: len(cluster.ready_pods(namespace, sel)) == 2, 60)


@pytest.mark.k8s
@pytest.mark.slow
def test_seed_pod_delete_of_a_bare_pod_is_violated(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    """The same entry against a pod no controller owns: nothing replaces it, the pods probe
    never recovers, and the hypothesis fails (exit 1): the verdict has teeth."""
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare", "namespace": namespace, "labels": {"app": "bare"}},
            "spec": POD_SPEC,
        }
    )
    assert wait_until(lambda: len(cluster.ready_pods(namespace, "app=bare")) == 1, 120)
    entry = {
        "name": "Pod Delete",
        "type": "node_failure",
        "params": {"failure_type": "pod-delete"},
        "duration": 5,
        "interval": 8,
    }
    out, analysis = _run_seed_suite(tmp_path, k8s_state, [entry], namespace, "app=bare")
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert analysis["outcome"] == "violated" and analysis["metrics"]["time_to_recovery"] is None
    assert cluster.pods(namespace, "app=bare") == []
