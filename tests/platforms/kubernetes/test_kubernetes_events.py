"""The Kubernetes Events of a run's targets in its journal (platforms/kubeevents.py), against the
real single-node cluster: what kubectl shows the cluster did is what the journal must hold, on
the run's clock, and nothing about objects the run did not name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cluster, wait_until

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.root]
PY = sys.executable


def _journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines() if line.strip()]


def _start(exp: Path, tmp_path: Path, k8s_state: Path) -> tuple[subprocess.Popen[str], Path]:
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [PY, "-m", "chaoslab", "run", str(exp), "--runs-dir", str(runs)],
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(k8s_state)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return proc, runs


def _when_in_fault_phase(proc: subprocess.Popen[str], runs: Path) -> Path:
    """The run's directory, once its journal shows the fault phase begun."""
    def in_fault() -> bool:
        dirs = [d for d in runs.glob("*") if (d / "journal.jsonl").exists()] if runs.exists() else []
        return bool(dirs) and any(r.get("type") == "phase" and r.get("name") == "fault" for r in _journal(dirs[0]))

    assert wait_until(lambda: in_fault() or proc.poll() is not None, 120), "the run never reached its fault"
    assert proc.poll() is None, proc.communicate()
    return next(d for d in runs.glob("*") if (d / "journal.jsonl").exists())


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return out


def _kill_one(cluster: Cluster, ns: str, selector: str) -> str:
    """Delete one pod with kubectl (grace 0), as someone else acting on the cluster would."""
    name = cluster.pods(ns, selector)[0]["metadata"]["name"]
    cluster.kubectl("delete", "pod", name, "-n", ns, "--grace-period=0", "--force")
    return str(name)


def _cluster_events(cluster: Cluster, ns: str, kind: str, name: str) -> list[str]:
    items = cluster.get("events", "-n", ns, "--field-selector", f"involvedObject.kind={kind},involvedObject.name={name}")["items"]
    return [str(e["reason"]) for e in items]


def test_pod_kill_run_records_the_killed_pod_and_its_replacement(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    sel = cluster.deployment(namespace, "web", replicas=2)
    other = cluster.deployment(namespace, "other", replicas=1)  # same namespace, not a target
    before = {p["metadata"]["name"] for p in cluster.pods(namespace, sel)}
    exp = tmp_path / "kill.yaml"
    # The pods probe makes the recovery phase last until the replacement is Ready (and steady
    # three windows), however long that takes here, rather than a guessed fixed length.
    exp.write_text(f"""
title: pod kill events
targets:
  web: {{pod: {{namespace: {namespace}, selector: "{sel}", seed: 7}}, mode: one}}
probes:
  ready: {{pods: {{namespace: {namespace}, selector: "{sel}"}}, every: 250ms, timeout: 5s}}
baseline: 2s
method:
  - {{fault: pod.kill, target: web, at: 1s}}
recovery: {{until: steady, max: 90s}}
""")
    proc, runs = _start(exp, tmp_path, k8s_state)
    run_dir = _when_in_fault_phase(proc, runs)
    bystander = _kill_one(cluster, namespace, other)  # during the run, in the same namespace
    _finish(proc)

    records = _journal(run_dir)
    began = next(r["t"] for r in records if r["type"] == "phase" and r["name"] == "fault")
    inject = next(r for r in records if r["type"] == "fault" and r["action"] == "inject")
    end = next(r for r in records if r["type"] == "end")
    victim = inject["state"]["deleted"][0]["name"]
    now = {p["metadata"]["name"] for p in cluster.ready_pods(namespace, sel)}
    (replacement,) = now - before
    k8s = [r for r in records if r["type"] == "event" and r["source"] == "kubernetes"]
    shown = [(round(r["t"], 2), r["kind"], r["object"]) for r in k8s]
    print(f"fault phase at {began:.3f} s, inject recorded at {inject['t']:.3f} s, end at {end['t']:.2f} s; kubernetes events: {shown}")

    def found(reason: str, obj: str) -> dict[str, Any]:
        hits = [r for r in k8s if r["kind"] == reason and r["object"] == obj]
        assert len(hits) == 1, (reason, obj, shown)
        return hits[0]

    killing = found("Killing", f"pod/{victim}")
    created = next(r for r in k8s if r["kind"] == "SuccessfulCreate" and r["message"].endswith(replacement))
    scheduled = found("Scheduled", f"pod/{replacement}")
    started = found("Started", f"pod/{replacement}")
    for rec in (killing, created, scheduled, started):
        # inside the run, after the inject began: the kubelet, the ReplicaSet controller and the
        # scheduler act within ~30 ms of the delete, before the client has read its answer
        # and the inject record is written (40 ms later here): what the record's time means
        assert began <= rec["t"] <= end["t"], (rec, began, end["t"])
        # (the kubelet may report one kill twice: one Event, its count 2)
        assert rec["count"] >= 1 and rec["namespace"] == namespace and rec["message"]
        # the API's own times (whole seconds for the kubelet's events) on the run's clock too
        assert rec["last_t"] <= rec["t"] < rec["last_t"] + 1.0, rec
    # the replacement's container started after the inject was recorded, once scheduled
    assert inject["t"] <= started["t"] and scheduled["t"] <= started["t"], shown
    assert killing["pod"] == victim and killing["component"] == "kubelet"
    assert created["object"].startswith("replicaset/web-")
    # The pods that were there before the run made no new events: nothing about them.
    untouched = (before - {victim}).pop()
    assert not [r for r in k8s if r["object"] == f"pod/{untouched}"], shown
    # The bystander's deletion made events the cluster shows, none of them in this run's journal.
    assert wait_until(lambda: "Killing" in _cluster_events(cluster, namespace, "Pod", bystander), 30)
    assert not [r for r in k8s if "other" in r["object"] or r.get("message", "").endswith(bystander)], shown

    # The analysis tells it in words, and the report lists the events.
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert len(analysis["kubernetes_events"]) == len(k8s)
    told = [f for f in analysis["findings"] if f.startswith(f"pod {victim} was stopped by the kubelet")]
    assert len(told) == 1 and f"created {replacement}" in told[0] and "started at" in told[0], analysis["findings"]
    report = (run_dir / "report.md").read_text()
    assert "## Kubernetes events" in report and f"pod/{replacement}" in report


def test_a_run_without_kubernetes_targets_records_no_kubernetes_events(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    sel = cluster.deployment(namespace, "busy", replicas=1)
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        exp = tmp_path / "local.yaml"
        exp.write_text(f"""
title: a local pause beside a busy cluster
targets:
  s: {{pid: {sleeper.pid}}}
baseline: 1s
method:
  - {{fault: process.pause, target: s, at: 0s, duration: 3s}}
recovery: 1s
""")
        proc, runs = _start(exp, tmp_path, k8s_state)
        run_dir = _when_in_fault_phase(proc, runs)
        victim = _kill_one(cluster, namespace, sel)  # the cluster is busy during the run
        assert wait_until(lambda: "Killing" in _cluster_events(cluster, namespace, "Pod", victim), 30)
        _finish(proc)
    finally:
        sleeper.kill()
        sleeper.wait()
    records = _journal(run_dir)
    assert any(r["type"] == "fault" and r["action"] == "revert" for r in records)
    assert not [r for r in records if r["type"] == "event" and r.get("source") == "kubernetes"]
    assert not [r for r in records if r["type"] == "error"], [r for r in records if r["type"] == "error"]


def test_deployment_scale_run_records_the_deployment_and_its_replicaset(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    sel = cluster.deployment(namespace, "api", replicas=2)
    exp = tmp_path / "scale.yaml"
    exp.write_text(f"""
title: scale events
targets:
  api: {{deployment: {{namespace: {namespace}, name: api}}}}
probes:
  ready: {{pods: {{namespace: {namespace}, selector: "{sel}"}}, every: 250ms, timeout: 5s}}
baseline: 2s
method:
  - {{fault: deployment.scale, target: api, at: 0s, duration: 2s, replicas: 1}}
recovery: {{until: steady, max: 90s}}
""")
    proc, runs = _start(exp, tmp_path, k8s_state)
    run_dir = _when_in_fault_phase(proc, runs)
    _finish(proc)
    records = _journal(run_dir)
    began = next(r["t"] for r in records if r["type"] == "phase" and r["name"] == "fault")
    revert = next(r for r in records if r["type"] == "fault" and r["action"] == "revert")
    end = next(r for r in records if r["type"] == "end")
    k8s = [r for r in records if r["type"] == "event" and r["source"] == "kubernetes"]
    shown = [(round(r["t"], 2), r["kind"], r["object"], r["message"], r["count"]) for r in k8s]
    print(f"fault phase at {began:.3f} s, revert at {revert['t']:.3f} s; kubernetes events: {shown}")
    scaling = [r for r in k8s if r["kind"] == "ScalingReplicaSet" and r["object"] == "deployment/api"]
    down = [r for r in scaling if "Scaled down" in r["message"] and r["message"].endswith(" to 1")]
    # "Scaled up ... to 2" happened once before the run (the deployment's creation): the same
    # Event, its count grown by one in the run
    up = [r for r in scaling if "Scaled up" in r["message"] and r["message"].endswith(" to 2")]
    assert len(down) == 1 and len(up) == 1, shown
    # the scale-up follows the revert's patch within milliseconds, maybe before the revert
    # record is written (as the kill before the inject record, above): the revert began at
    # least the step's 2 s after the fault phase began
    assert began <= down[0]["t"] <= revert["t"] and began + 2.0 <= up[0]["t"] <= end["t"], shown
    assert up[0]["count"] == 1 and up[0]["first_t"] < 0 <= up[0]["last_t"], up  # first: before the run
    deleted = [r for r in k8s if r["kind"] == "SuccessfulDelete" and r["object"].startswith("replicaset/api-")]
    assert len(deleted) == 1 and began <= deleted[0]["t"] <= revert["t"], shown
    assert [r for r in k8s if r["kind"] == "Killing" and began <= r["t"] <= end["t"]], shown


def test_a_session_records_the_events_of_its_pod_faults_in_one_look(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    """The programmatic session has no recorder: it lists once at its end (``events``)."""
    from chaoslab.runner.session import ChaosSession

    sel = cluster.deployment(namespace, "sess", replicas=2)
    before = {p["metadata"]["name"] for p in cluster.pods(namespace, sel)}
    with ChaosSession(tmp_path / "run", "session pod kill", ledger_root=tmp_path / "ledger") as chaos:
        with chaos.fault("pod.kill", {"pod": {"namespace": namespace, "selector": sel, "seed": 3}, "mode": "one"}) as f:
            victim = f.state["deleted"][0]["name"]
        # the session ends once the replacement runs and the kubelet has posted its Started
        # Event (what the cluster shows, not a guess): the kubelet posts Events apart from the
        # pod's status, so on a busy machine a pod can be ready before its Event is in the API,
        # and the session's one look at its end would rightly not see it yet.
        assert wait_until(lambda: len(cluster.ready_pods(namespace, sel)) == 2, 120)

        def replacement_started() -> bool:
            new = {p["metadata"]["name"] for p in cluster.ready_pods(namespace, sel)} - before
            events = cluster.get("events", "-n", namespace)["items"]
            return any(e["reason"] == "Started" and e["involvedObject"]["name"] in new for e in events)

        assert wait_until(replacement_started, 60)
    (replacement,) = {p["metadata"]["name"] for p in cluster.ready_pods(namespace, sel)} - before
    records = _journal(tmp_path / "run")
    k8s = [(r["kind"], r["object"]) for r in records if r["type"] == "event" and r["source"] == "kubernetes"]
    end = next(r["t"] for r in records if r["type"] == "end")
    assert ("Killing", f"pod/{victim}") in k8s and ("Started", f"pod/{replacement}") in k8s, k8s
    assert all(0 <= r["t"] <= end for r in records if r["type"] == "event" and r["source"] == "kubernetes")
    assert not [o for _, o in k8s if o.startswith("pod/") and o[4:] in before - {victim}], k8s
