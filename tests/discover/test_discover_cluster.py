"""`chaoslab discover k8s:NS` and `chaoslab init k8s:NS` against the real single-node cluster of
scripts/k8s.sh: a small app deployed into a fresh namespace (a probed `web` of two replicas behind
a Service, a `db` StatefulSet on a PVC behind a headless Service, a `worker` whose env names both),
then discovery, a suite that validates and dry-runs with each fault's resolved pods, and one
generated experiment (the kill of a `web` pod) run to its verdict with nothing left behind.
What the cluster shows is asked of kubectl, not of chaoslab.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import free_port

# The name pytest itself imports tests/platforms/kubernetes/conftest.py under (tests/ has no
# __init__.py, tests/platforms has one): the same module object, so a session running both
# folders shares one `cluster` fixture and starts (and stops) the cluster once.
from platforms.kubernetes.conftest import (  # type: ignore[import-not-found]
    IMAGE,
    Cluster,
    cluster,
    k8s_state,
    namespace,
    wait_until,
)

from .test_discover_files import cli

__all__ = ["cluster", "k8s_state", "namespace"]  # fixtures, imported to be found here

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.root]

DB_PORT = free_port()  # a host port: every pod here is on the host network
LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def _pod(command: str, env: dict[str, str] | None = None, **container: Any) -> dict[str, Any]:
    """A host-network pod (no network plugin on this cluster) of the local busybox image."""
    return {
        "hostNetwork": True,
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                        "command": ["/bin/sh", "-c", command],
                        "env": [{"name": k, "value": v} for k, v in (env or {}).items()], **container}],
    }


def _workload(kind: str, name: str, ns: str, replicas: int, pod: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod}, **spec}}


def deploy_app(c: Cluster, ns: str, data_dir: Path) -> None:
    probe = {"exec": {"command": ["true"]}, "periodSeconds": 2, "failureThreshold": 3, "timeoutSeconds": 1}
    # web: two replicas; on the host network two pods cannot both declare (hence bind) one
    # container port, so the port is the Service's targetPort only
    c.apply(_workload("Deployment", "web", ns, 2,
                      _pod(LOOP, readinessProbe=probe, livenessProbe={**probe, "periodSeconds": 5})))
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
             "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    # db: a StatefulSet whose pod mounts a PVC bound by name to a hostPath PV (no provisioner here)
    c.apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{ns}-db"},
             "spec": {"capacity": {"storage": "10Mi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                      "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(data_dir)},
                      "claimRef": {"namespace": ns, "name": "db-data"}}})
    c.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "db-data", "namespace": ns},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": f"{ns}-db",
                      "resources": {"requests": {"storage": "10Mi"}}}})
    db_pod = _pod(LOOP, ports=[{"name": "pg", "containerPort": DB_PORT}],
                  volumeMounts=[{"name": "data", "mountPath": "/data"}],
                  readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 2})
    db_pod["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "db-data"}}]
    c.apply(_workload("StatefulSet", "db", ns, 1, db_pod, serviceName="db"))
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": ns},
             "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"name": "pg", "port": DB_PORT}]}})
    # worker: one replica, no probe; its env names web's Service (URL) and db's (FQDN host)
    c.apply(_workload("Deployment", "worker", ns, 1, _pod(LOOP, env={
        "WEB_URL": "http://web:80/jobs", "DB_HOST": f"db.{ns}.svc.cluster.local", "DB_PORT": str(DB_PORT)})))
    for sel, n in (("app=web", 2), ("app=db", 1), ("app=worker", 1)):
        assert wait_until(lambda s=sel, k=n: len(c.ready_pods(ns, s)) == k, 180), c.kubectl(  # type: ignore[misc]
            "describe", "pods", "-n", ns, "-l", sel, check=False)


@pytest.fixture
def app(cluster: Cluster, namespace: str, tmp_path: Path) -> Any:
    data = tmp_path / "db-data"
    data.mkdir()
    try:  # the PV is cluster-wide: deleting the namespace leaves it, even when deploy_app fails
        deploy_app(cluster, namespace, data)
        yield namespace
    finally:
        cluster.kubectl("delete", "pv", f"{namespace}-db", "--wait=false", check=False)


@pytest.mark.timeout(600)
def test_discover_init_and_one_run_on_the_cluster(cluster: Cluster, app: str, k8s_state: Path,
                                                  tmp_path: Path) -> None:
    ns = app
    env = {"KUBECONFIG": str(cluster.kubeconfig), "CHAOSLAB_STATE_DIR": str(k8s_state)}

    # 1. discover: workloads, replicas, probes, ports, state, edges and advice
    t0 = time.monotonic()
    out = cli("discover", f"k8s:{ns}", "--json", env=env)
    print(f"discover k8s:{ns} --json: {time.monotonic() - t0:.1f} s")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    svcs = found["services"]
    assert set(svcs) == {"web", "db", "worker"}
    web, db, worker = svcs["web"], svcs["db"], svcs["worker"]
    assert (web["replicas"], db["replicas"], worker["replicas"]) == (2, 1, 1)
    assert web["health"]["kind"] == "command" and web["health"]["interval"] == 2.0
    assert worker["health"] is None
    assert [(p["port"], p["name"], p["http"]) for p in web["ports"]] == [(8080, "http", True)]
    assert [(p["port"], p["name"]) for p in db["ports"]] == [(DB_PORT, "pg")]
    assert db["stateful"] and "a StatefulSet" in db["state"] and "PVC db-data" in db["state"]
    assert not web["stateful"] and not worker["stateful"]
    assert web["target"] == {"pod": {"namespace": ns, "selector": "app=web"}, "mode": "count:1"}
    edges = {(d["source"], d["target"]): d for d in found["dependencies"]}
    assert set(edges) == {("worker", "web"), ("worker", "db")}, edges
    assert "env WEB_URL" in edges[("worker", "web")]["via"]
    assert "env DB_HOST" in edges[("worker", "db")]["via"]
    advice = "\n".join(found["advice"])
    assert "worker: no health check" in advice and "worker: a single replica" in advice
    assert "db: a single replica" in advice and "web: a single replica" not in advice
    assert "pod.kill" in web["faults"]

    # 2. init: every file validates; each fault's dry run names the pods it resolves to
    suite = tmp_path / "suite"
    t0 = time.monotonic()
    init = cli("init", f"k8s:{ns}", "-o", str(suite), env=env)
    print(f"init k8s:{ns}: {time.monotonic() - t0:.1f} s")
    assert init.returncode == 0, init.stdout + init.stderr
    experiments = sorted((suite / "experiments").glob("*.yaml"))
    names = [f.name[3:-5] for f in experiments]
    assert names == ["db-kill", "db-cpu-throttle", "db-memory-limit", "web-kill", "web-cpu-throttle",
                     "web-memory-limit", "worker-kill", "worker-cpu-throttle", "worker-memory-limit"], names
    # no partition: every pod here is on the host network, where NetworkPolicies do not apply
    assert "worker -> web: worker and web on the host network" in (suite / "suite.yaml").read_text()
    v = cli("suite", "validate", str(suite / "suite.yaml"), env=env)
    assert v.returncode == 0, v.stdout + v.stderr
    for f in experiments:
        v = cli("validate", str(f), env=env)
        assert v.returncode == 0, f"{f.name}: {v.stdout}{v.stderr}"
    # the stateful db's data check waits for the user, and validate says what is missing
    (todo,) = (suite / "todo").glob("*.yaml")
    v = cli("validate", str(todo), env=env)
    assert v.returncode == 2 and "WRITE_URL" in v.stdout + v.stderr, v.stdout + v.stderr
    pods = {sel: sorted(p["metadata"]["name"] for p in cluster.pods(ns, f"app={sel}")) for sel in svcs}
    for f in experiments:
        dry = cli("run", "--dry-run", str(f), env=env)
        assert dry.returncode == 0, f"{f.name}: {dry.stdout}{dry.stderr}"
        owner = f.name.split("-", 1)[1].split("-", 1)[0]
        assert any(p in dry.stdout for p in pods[owner]), f"{f.name}: no pod of {owner} in\n{dry.stdout}"

    # 3. one generated experiment runs: a web pod killed, the Deployment back to two ready pods
    kill = next(f for f in experiments if f.name.endswith("web-kill.yaml"))
    # no HTTP probe on web's ClusterIP (it answers inside the cluster only): the pods are the signal
    spec = yaml.safe_load(kill.read_text())
    assert spec["probes"] == {"web-pods": {"pods": {"namespace": ns, "selector": "app=web"}, "every": "1s",
                                           "timeout": "5s", "signal": True}}, spec["probes"]
    before = set(pods["web"])
    runs = tmp_path / "runs"
    t0 = time.monotonic()
    r = cli("run", "-q", "--runs-dir", str(runs), str(kill), env=env)
    print(f"run {kill.name}: {time.monotonic() - t0:.1f} s\n{r.stdout}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict:" in r.stdout
    summary = json.loads(next(runs.glob("*/summary.json")).read_text())
    assert summary["outcome"] == "held", summary
    # nothing left behind: two ready web pods, one of them new; no Chaos Mesh object; no ledger
    assert wait_until(lambda: len(cluster.ready_pods(ns, "app=web")) == 2, 120)
    after = {p["metadata"]["name"] for p in cluster.pods(ns, "app=web")}
    assert len(after) == 2 and len(before - after) == 1, (before, after)
    crds = cluster.kubectl("get", "crd", "-o", "name", check=False)
    for crd in (line.split("/", 1)[1] for line in crds.split() if "chaos-mesh.org" in line):
        assert cluster.get(crd, "-n", ns)["items"] == [], crd
    left = cli("recover", "--list", env=env)
    assert left.returncode == 0 and ns not in left.stdout and "inject" not in left.stdout, left.stdout
    assert len(cluster.ready_pods(ns, "app=db")) == 1 and len(cluster.ready_pods(ns, "app=worker")) == 1


def test_an_empty_or_absent_namespace_is_one_line_and_exit_2(cluster: Cluster, namespace: str,
                                                             k8s_state: Path) -> None:
    """The API lists an absent namespace as an empty one; the two get their own line."""
    env = {"KUBECONFIG": str(cluster.kubeconfig), "CHAOSLAB_STATE_DIR": str(k8s_state)}
    empty = cli("discover", f"k8s:{namespace}", env=env)
    assert (empty.returncode, empty.stdout) == (2, ""), empty
    assert empty.stderr == f"chaoslab: k8s:{namespace}: namespace {namespace!r} has no Deployment or StatefulSet\n"
    absent = cli("init", f"k8s:{namespace}-absent", "-o", str(k8s_state / "suite"), env=env)
    assert (absent.returncode, absent.stdout) == (2, ""), absent
    assert absent.stderr == f"chaoslab: k8s:{namespace}-absent: no such namespace\n", absent.stderr
    assert not (k8s_state / "suite").exists()
    bad = cli("discover", f"k8s:{namespace}", "--kubeconfig", str(k8s_state / "missing.kubeconfig"), env=env)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr, bad
