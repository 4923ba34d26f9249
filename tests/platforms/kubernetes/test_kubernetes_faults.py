"""Kubernetes API faults against the real single-node cluster of scripts/k8s.sh.

Each test asserts on what kubectl and docker show, never on chaoslab's own account.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chaoslab import faults
from chaoslab.faults.base import Fault
from chaoslab.targets import ResolvedTarget, TargetSpec, resolve

from .conftest import NODE, Cluster, docker_ids, recover, run_and_sigkill, wait_until

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.root]
PY = sys.executable


def target(name: str, **spec: Any) -> ResolvedTarget:
    return resolve(name, TargetSpec.model_validate(spec))


def make(fault: str, params: dict[str, Any], tgt: ResolvedTarget) -> Fault:
    cls = faults.get(fault)
    return cls(cls.Params.model_validate(params), tgt, run_id="k8stest")


def test_pod_delete_is_replaced_and_recovery_is_measured(
    cluster: Cluster, namespace: str, k8s_state: Path
) -> None:
    sel = cluster.deployment(namespace, "web", replicas=2)
    tgt = target("web", pod={"namespace": namespace, "selector": sel, "seed": 7}, mode="one")
    assert tgt.extra["seed"] == 7 and len(tgt.extra["pods"]) == 1
    victim = tgt.extra["pods"][0]
    before = docker_ids(victim["uid"])
    assert before, "the pod's containers run in the local dockerd"
    # The pod's main process is a local process: container faults reach pods.
    assert tgt.processes and all(ref.alive() for ref in tgt.processes)

    fault = make("pod.delete", {"grace_period": "1s", "await_replacement": "120s"}, tgt)
    t0 = time.monotonic()
    fault.inject()
    elapsed = time.monotonic() - t0
    assert fault.state["deleted"] == [{"name": victim["name"], "uid": victim["uid"]}]
    # When inject returns, the API already shows two Ready pods, the deleted one not among them.
    ready = {p["metadata"]["uid"] for p in cluster.ready_pods(namespace, sel)}
    assert len(ready) == 2 and victim["uid"] not in ready
    assert wait_until(lambda: not docker_ids(victim["uid"]), 60), (
        "the deleted pod's containers still run"
    )
    recovery = fault.state["replaced_after"]
    assert recovery is not None and 0 < recovery <= elapsed + 0.5
    print(f"pod.delete: replacement Ready after {recovery:.2f}s")


def test_pod_delete_never_touches_a_recreated_pod_of_the_same_name(
    cluster: Cluster, namespace: str, k8s_state: Path
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "solo", "namespace": namespace, "labels": {"app": "solo"}},
        "spec": {
            "hostNetwork": True,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": "chaoslab/busybox:local",
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }
    cluster.apply(pod)
    assert wait_until(lambda: len(cluster.ready_pods(namespace, "app=solo")) == 1, 120)
    tgt = target("solo", pod={"namespace": namespace, "selector": "app=solo"})
    cluster.kubectl("delete", "pod", "solo", "-n", namespace, "--grace-period=0", "--force")
    cluster.apply(pod)
    assert wait_until(lambda: len(cluster.ready_pods(namespace, "app=solo")) == 1, 120)
    new_uid = cluster.pods(namespace, "app=solo")[0]["metadata"]["uid"]
    assert new_uid != tgt.extra["pods"][0]["uid"]
    with pytest.raises(Exception, match="none of the target's pods"):
        make("pod.kill", {}, tgt).inject()
    assert cluster.pods(namespace, "app=solo")[0]["metadata"]["uid"] == new_uid


def test_crashloop_deletes_again_every_interval(
    cluster: Cluster, namespace: str, k8s_state: Path
) -> None:
    sel = cluster.deployment(namespace, "loop", replicas=1)
    tgt = target("loop", pod={"namespace": namespace, "selector": sel}, mode="all")
    fault = make("pod.crashloop", {"every": "2s"}, tgt)
    seen: set[str] = set()
    fault.inject()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and fault.state["kills"] < 3:
        time.sleep(2)
        seen |= {p["metadata"]["uid"] for p in cluster.pods(namespace, sel)}
        fault.tick()
    fault.revert()
    assert fault.state["kills"] >= 3
    assert len(seen) >= 2, "the controller made replacements, and they were deleted in turn"
    assert wait_until(lambda: len(cluster.ready_pods(namespace, sel)) == 1, 120)


def test_deployment_scale_reverted_after_sigkill_and_recover(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    cluster.deployment(namespace, "api", replicas=2)
    record = run_and_sigkill(
        k8s_state,
        tmp_path,
        "{fault: deployment.scale, target: t, at: 0s, duration: 120s, replicas: 0}",
        f"{{deployment: {{namespace: {namespace}, name: api}}, kubeconfig: {cluster.kubeconfig}}}",
        lambda: (
            cluster.get("deployment", "api", "-n", namespace)["spec"]["replicas"] == 0
            and not cluster.pods(namespace, "app=api")
        ),
    )
    time.sleep(1)
    live = cluster.get("deployment", "api", "-n", namespace)
    assert live["spec"]["replicas"] == 0, "SIGKILL left it scaled"
    assert record["state"]["uid"] == live["metadata"]["uid"]
    recover(k8s_state)
    assert cluster.get("deployment", "api", "-n", namespace)["spec"]["replicas"] == 2
    assert wait_until(lambda: len(cluster.ready_pods(namespace, "app=api")) == 2, 120)


def test_node_drain_uncordoned_by_recover_after_sigkill(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    sel = cluster.deployment(namespace, "drained", replicas=1)
    before = {p["metadata"]["uid"] for p in cluster.pods(namespace, sel)}
    try:
        record = run_and_sigkill(
            k8s_state,
            tmp_path,
            "{fault: node.drain, target: t, at: 0s, duration: 120s, timeout: 20s}",
            f"{{node: {NODE}, kubeconfig: {cluster.kubeconfig}}}",
            lambda: (
                cluster.get("node", NODE)["spec"].get("unschedulable") is True
                and not before & {p["metadata"]["uid"] for p in cluster.pods(namespace, sel)}
            ),
        )
        time.sleep(1)
        node = cluster.get("node", NODE)
        assert node["spec"].get("unschedulable") is True, "SIGKILL left the node cordoned"
        assert node["metadata"]["uid"] in json.dumps(record), record  # recover finds it by uid
        assert not cluster.ready_pods(namespace, sel), "an evicted pod came back on a cordoned node"
        recover(k8s_state)
        assert not cluster.get("node", NODE)["spec"].get("unschedulable")
        assert wait_until(lambda: len(cluster.ready_pods(namespace, sel)) == 1, 120)
    finally:  # never leave the machine's only node cordoned for the next test
        cluster.kubectl("uncordon", NODE)


def test_crashloop_dies_with_the_runner_and_recover_closes_it(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    sel = cluster.deployment(namespace, "looped", replicas=1)
    first = {p["metadata"]["uid"] for p in cluster.pods(namespace, sel)}
    run_and_sigkill(
        k8s_state,
        tmp_path,
        "{fault: pod.crashloop, target: t, at: 0s, duration: 120s, every: 2s}",
        f"{{pod: {{namespace: {namespace}, selector: '{sel}'}}, mode: all, "
        f"kubeconfig: {cluster.kubeconfig}}}",
        lambda: not first & {p["metadata"]["uid"] for p in cluster.pods(namespace, sel)},
    )
    # Nothing is held in the cluster: the loop is the fault, and it died with the runner.
    assert wait_until(lambda: len(cluster.ready_pods(namespace, sel)) == 1, 120)
    survivor = {p["metadata"]["uid"] for p in cluster.ready_pods(namespace, sel)}
    time.sleep(6)  # three of the loop's intervals
    assert {p["metadata"]["uid"] for p in cluster.pods(namespace, sel)} == survivor
    recover(k8s_state)
    assert {p["metadata"]["uid"] for p in cluster.ready_pods(namespace, sel)} == survivor


def test_node_cordon_and_revert(cluster: Cluster, k8s_state: Path) -> None:
    tgt = target("n", node=NODE)
    fault = make("node.cordon", {}, tgt)
    try:
        fault.inject()
        assert cluster.get("node", NODE)["spec"].get("unschedulable") is True
    finally:
        fault.revert()
    assert not cluster.get("node", NODE)["spec"].get("unschedulable")


def test_drain_honours_a_pod_disruption_budget(
    cluster: Cluster, namespace: str, k8s_state: Path
) -> None:
    sel = cluster.deployment(namespace, "guarded", replicas=2)
    cluster.apply(
        {
            "apiVersion": "policy/v1beta1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "guarded", "namespace": namespace},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}},
        }
    )
    assert wait_until(
        lambda: (
            cluster.get("pdb", "guarded", "-n", namespace).get("status", {}).get("currentHealthy")
            == 2
        ),
        60,
    )
    uids = {p["metadata"]["uid"] for p in cluster.pods(namespace, sel)}
    fault = make("node.drain", {"timeout": "4s"}, target("n", node=NODE))
    try:
        fault.inject()
        guarded = {f"{namespace}/{p['metadata']['name']}" for p in cluster.pods(namespace, sel)}
        assert guarded <= set(fault.state["blocked"]), fault.state
        assert {p["metadata"]["uid"] for p in cluster.pods(namespace, sel)} == uids, (
            "the PDB was not honoured"
        )
        assert cluster.get("node", NODE)["spec"].get("unschedulable") is True
    finally:
        fault.revert()
    assert not cluster.get("node", NODE)["spec"].get("unschedulable")


def test_policy_partition_created_and_deleted(
    cluster: Cluster, namespace: str, k8s_state: Path
) -> None:
    cluster.deployment(namespace, "a", replicas=1)
    tgt = target("a", pod={"namespace": namespace, "selector": "app=a"}, mode="all")
    fault = make("network.policy_partition", {"peer": "app=b"}, tgt)
    try:
        fault.inject()
        pols = cluster.get("networkpolicy", "-n", namespace)["items"]
        assert {p["metadata"]["uid"] for p in pols} == {p["uid"] for p in fault.state["policies"]}
        assert {json.dumps(p["spec"]["podSelector"]) for p in pols} == {
            json.dumps({"matchLabels": {"app": "a"}}),
            json.dumps({"matchLabels": {"app": "b"}}),
        }
    finally:
        fault.revert()
    assert cluster.get("networkpolicy", "-n", namespace)["items"] == []


def test_dry_run_lists_the_resolved_pods(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    sel = cluster.deployment(namespace, "dry", replicas=3)
    exp = tmp_path / "dry.yaml"
    exp.write_text(f"""
title: dry
targets:
  dry: {{pod: {{namespace: {namespace}, selector: "{sel}", seed: 11}}, mode: "count:2"}}
method:
  - {{fault: pod.kill, target: dry, at: 0s}}
""")
    out = subprocess.run(
        [PY, "-m", "chaoslab", "run", "--dry-run", str(exp), "--runs-dir", str(tmp_path / "runs")],
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(k8s_state)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = [p["metadata"]["name"] for p in cluster.pods(namespace, sel)]
    shown = [n for n in names if n in out.stdout]
    assert len(shown) == 2, out.stdout + out.stderr
    assert "seed 11" in out.stdout
    assert len(cluster.pods(namespace, sel)) == 3, "a dry run deleted nothing"


def test_process_kill_on_a_pod_kills_its_docker_container_and_the_kubelet_restarts_it(
    cluster: Cluster, namespace: str, k8s_state: Path
) -> None:
    sel = cluster.deployment(namespace, "local", replicas=1)
    tgt = target("local", pod={"namespace": namespace, "selector": sel})
    pod = tgt.extra["pods"][0]
    container = pod["containers"][0]["docker"]
    assert {ref.pid for ref in tgt.processes} == {container["pid"]}
    make("process.kill", {}, tgt).inject()

    def restarted() -> bool:
        statuses = (
            cluster.get("pod", pod["name"], "-n", namespace)["status"].get("containerStatuses")
            or []
        )
        return bool(statuses) and statuses[0].get("restartCount", 0) >= 1

    assert wait_until(restarted, 120), "the kubelet did not see the container die"
    assert container["id"] not in docker_ids(pod["uid"]), "the killed container still runs"
    assert cluster.get("pod", pod["name"], "-n", namespace)["metadata"]["uid"] == pod["uid"], (
        "same pod, new container"
    )


def _docker_state(container_id: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{json .State}}", container_id],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(json.loads(out.stdout))


def test_container_pause_on_a_pod_unpaused_by_recover_after_sigkill(
    cluster: Cluster, namespace: str, k8s_state: Path, tmp_path: Path
) -> None:
    """Item 5: a pod's container is a local Docker container, so container.pause freezes it
    without Chaos Mesh. SIGKILL of the runner leaves it frozen; `chaoslab recover` thaws it, and
    it is the same container of the same pod (nothing was restarted)."""
    sel = cluster.deployment(namespace, "frozen", replicas=1)
    (pod,) = cluster.pods(namespace, sel)
    (cid,) = _app_containers(pod["metadata"]["uid"])
    record = run_and_sigkill(
        k8s_state,
        tmp_path,
        "{fault: container.pause, target: t, at: 0s, duration: 120s}",
        f"{{pod: {{namespace: {namespace}, selector: '{sel}'}}, mode: all, "
        f"kubeconfig: {cluster.kubeconfig}}}",
        lambda: bool(_docker_state(cid)["Paused"]),
    )
    assert [c["id"] for c in record["state"]["containers"]] == [cid]
    time.sleep(1)
    assert _docker_state(cid)["Paused"], "SIGKILL of the runner left the container frozen"
    recover(k8s_state)
    state = _docker_state(cid)
    assert state["Running"] and not state["Paused"]
    assert (
        cluster.get("pod", pod["metadata"]["name"], "-n", namespace)["metadata"]["uid"]
        == (pod["metadata"]["uid"])
    )


def _app_containers(pod_uid: str) -> set[str]:
    """The pod's running Docker containers but its sandbox (the pause container)."""
    return {c for c in docker_ids(pod_uid) if not _is_sandbox(c)}


def _is_sandbox(container_id: str) -> bool:
    out = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            '{{index .Config.Labels "io.kubernetes.docker.type"}}',
            container_id,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip() == "podsandbox"


def test_cpu_throttle_on_a_pod_sets_its_containers_quota_and_reverts(
    cluster: Cluster, namespace: str, k8s_state: Path
) -> None:
    """Item 5: cpu.throttle on a pod writes the CFS quota of the pod's own Docker container
    cgroup (read back from the cgroup file), and the revert restores the value it found."""
    sel = cluster.deployment(namespace, "slow", replicas=1)
    tgt = target("slow", pod={"namespace": namespace, "selector": sel})
    (container,) = tgt.extra["containers"]
    assert container["id"] == tgt.extra["pods"][0]["containers"][0]["docker"]["id"]
    cpu_dir = Path(tgt.cgroups["cpu"]) if "cpu" in tgt.cgroups else None
    assert cpu_dir is not None and container["id"] in str(cpu_dir), tgt.cgroups
    quota = cpu_dir / "cpu.cfs_quota_us"
    before = quota.read_text().strip()
    fault = make("cpu.throttle", {"cores": 0.2}, tgt)
    try:
        fault.inject()
        period = int((cpu_dir / "cpu.cfs_period_us").read_text())
        assert int(quota.read_text()) == round(0.2 * period), quota.read_text()
    finally:
        fault.revert()
    assert quota.read_text().strip() == before


def test_cpu_throttle_on_a_pod_follows_the_container_the_kubelet_restarts(
    cluster: Cluster, namespace: str, k8s_state: Path
) -> None:
    """The pod's container crashes mid-fault and the kubelet starts a new one (new id, new
    cgroup, Kubernetes' own settings): the fault's tick holds the throttle on the new cgroup
    too, so it lasts its whole duration; the revert restores the new container's own value."""
    sel = cluster.deployment(namespace, "crashy", replicas=1)
    tgt = target("crashy", pod={"namespace": namespace, "selector": sel})
    (old,) = tgt.extra["containers"]
    fault = make("cpu.throttle", {"cores": 0.2}, tgt)
    assert fault.interval is not None, "a pod's cgroup fault is ticked"
    uid = tgt.extra["pods"][0]["uid"]
    try:
        fault.inject()
        os.kill(old["pid"], signal.SIGKILL)

        def new_container() -> str | None:
            ids = _app_containers(uid) - {old["id"]}
            return next(iter(ids), None)

        assert wait_until(lambda: new_container() is not None, 120), (
            "the kubelet did not restart it"
        )
        new = new_container()
        assert new is not None

        def throttled() -> bool:
            fault.tick()
            dirs = [e["dirs"] for e in fault.state.get("each") or []]
            return any(new in str(p) for d in dirs for p in d.values())

        assert wait_until(throttled, 30, every=1.0), fault.state
        quota = _cpu_file(new, "cpu.cfs_quota_us")
        period = int(_cpu_file(new, "cpu.cfs_period_us").read_text())
        assert int(quota.read_text()) == round(0.2 * period), quota.read_text()
    finally:
        fault.revert()
    assert quota.read_text().strip() == "-1", "the new container's own value is back"


def _cpu_file(container_id: str, name: str) -> Path:
    """A knob of the container's cpu cgroup (v1), found from its main process's /proc entry."""
    pid = _docker_state(container_id)["Pid"]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return Path("/sys/fs/cgroup/cpu") / rel.lstrip("/") / name
    raise AssertionError(f"container {container_id} has no cpu cgroup")
