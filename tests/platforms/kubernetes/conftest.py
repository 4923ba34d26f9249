"""The single-node cluster of scripts/k8s.sh, started once per session and stopped at its end.

It runs under its own state directory and API port, so a developer's own `scripts/k8s.sh up`
is left alone. Helpers ask kubectl and docker, not chaoslab, what the cluster shows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "k8s.sh"
CACHE_BIN = Path(os.environ.get("CHAOSLAB_K8S_CACHE", "/var/cache/chaoslab/k8s-1.20.2")) / "bin"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
STATE = Path(os.environ.get("CHAOSLAB_K8S_TEST_STATE", "/tmp/chaoslab-k8s-test"))
PORT = os.environ.get("CHAOSLAB_K8S_TEST_PORT", "16443")
ETCD_PORT = os.environ.get("CHAOSLAB_K8S_TEST_ETCD_PORT", "12479")
NODE = "chaoslab-node"
IMAGE = "chaoslab/busybox:local"


POD_SPEC: dict[str, Any] = {
    "hostNetwork": True,  # no network plugin on this cluster
    "terminationGracePeriodSeconds": 2,
    "containers": [
        {
            "name": "main",
            "image": IMAGE,
            "imagePullPolicy": "Never",
            "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
        }
    ],
}
"""A pod of the locally imported busybox image that exits at SIGTERM."""


def wait_until(pred: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return pred()


@dataclass
class Cluster:
    kubeconfig: Path

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        out = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
        return out.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("pods", "-n", ns, "-l", selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def ready_pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        def ready(p: dict[str, Any]) -> bool:
            conds = p.get("status", {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        return [p for p in self.pods(ns, selector) if ready(p)]

    def deployment(self, ns: str, name: str, replicas: int = 2, ready_after: int = 0) -> str:
        """A host-network busybox deployment of the locally imported image; returns its selector.
        ``ready_after``: a readiness probe that first passes that many seconds after start."""
        spec = json.loads(json.dumps(POD_SPEC))
        if ready_after:
            spec["containers"][0]["readinessProbe"] = {
                "exec": {"command": ["true"]},
                "initialDelaySeconds": ready_after,
                "periodSeconds": 1,
            }
        self.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": spec,
                    },
                },
            }
        )
        sel = f"app={name}"
        assert wait_until(lambda: len(self.ready_pods(ns, sel)) == replicas, 120), self.kubectl(
            "describe", "pods", "-n", ns, "-l", sel, check=False
        )
        return sel


def docker_ids(pod_uid: str) -> set[str]:
    """Running Docker containers the kubelet made for one pod (dockershim labels them)."""
    out = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=io.kubernetes.pod.uid={pod_uid}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return set(out.stdout.split())


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0 or shutil.which("docker") is None or shutil.which("kubectl") is None:
        pytest.skip("the Kubernetes tests need root, docker and kubectl")
    missing = [b for b in BINARIES if not (CACHE_BIN / b).exists()]
    if missing:
        # A one-time build of 35 minutes or more on 2 cores: `make k8s`, not every `make test`.
        pytest.skip(
            f"Kubernetes is not built yet ({', '.join(missing)} missing in {CACHE_BIN}): run `make k8s`"
        )
    # One kubelet per dockerd (fixed ports, and `down` removes every pod container): a cluster
    # someone already started with `scripts/k8s.sh up` is used as it is and left running.
    status = subprocess.run(
        ["bash", str(SCRIPT), "status"], capture_output=True, text=True, timeout=60, check=False
    )
    if status.returncode == 0 and "stopped" not in status.stdout:
        env_line = subprocess.run(
            ["bash", str(SCRIPT), "env"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        yield Cluster(Path(env_line.strip().split("=", 1)[1]))
        return
    env = {
        **os.environ,
        "CHAOSLAB_K8S_STATE": str(STATE),
        "CHAOSLAB_K8S_PORT": PORT,
        "CHAOSLAB_K8S_ETCD_PORT": ETCD_PORT,
    }
    up = subprocess.run(
        ["bash", str(SCRIPT), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    try:
        assert up.returncode == 0, f"scripts/k8s.sh up failed:\n{up.stderr[-3000:]}"
        yield Cluster(STATE / "admin.kubeconfig")
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "down", "--purge"],
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    ns = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns)
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def k8s_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: Cluster) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    monkeypatch.setenv("CHAOSLAB_STATE_DIR", str(d))
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    return d


# -- SIGKILL of the runner mid-fault, then `chaoslab recover` ----------------------------------


def _state_env(k8s_state: Path) -> dict[str, str]:
    return {**os.environ, "CHAOSLAB_STATE_DIR": str(k8s_state)}


def run_and_sigkill(
    k8s_state: Path, tmp_path: Path, step: str, target_yaml: str, injected: Callable[[], bool]
) -> dict[str, Any]:
    """Run one fault step, SIGKILL the runner once ``injected()`` holds on the cluster, and
    return the ledger's one record."""
    exp = tmp_path / "fault.yaml"
    exp.write_text(f"""
title: killed mid-fault
targets:
  t: {target_yaml}
method:
  - {step}
recovery: 1s
""")
    runner = subprocess.Popen(
        [sys.executable, "-m", "chaoslab", "run", str(exp), "--runs-dir", str(tmp_path / "runs")],
        env=_state_env(k8s_state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(injected, 90), "the fault never showed on the cluster"
    finally:
        runner.send_signal(signal.SIGKILL)
        out, err = runner.communicate(timeout=30)
    ledger = list((k8s_state / "ledger").glob("*/[0-9]*.json"))
    assert len(ledger) == 1, (ledger, out, err)
    return dict(json.loads(ledger[0].read_text()))


def recover(k8s_state: Path) -> None:
    rec = subprocess.run(
        [sys.executable, "-m", "chaoslab", "recover"],
        env=_state_env(k8s_state),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert not list((k8s_state / "ledger").glob("*/[0-9]*.json")), "recover left a ledger entry"


# -- Chaos Mesh: its CRDs, and its controller played by the test -------------------------------


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    """The cluster with chaoslab's Chaos Mesh CRDs installed and established."""
    from chaoslab.platforms import chaosmesh as cm

    for crd in cm.crd_manifests():
        cluster.apply(crd)
    for plural in cm.KINDS.values():
        assert wait_until(
            lambda p=plural: (
                cluster.kubectl(  # type: ignore[misc]
                    "get",
                    "crd",
                    f"{p}.{cm.GROUP}",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                    check=False,
                )
                == "True"
            ),
            60,
        )
    return cluster


class ControllerStandIn:
    """What Chaos Mesh's controller would do, played by the test (it cannot run here): a thread
    marks every resource of the given kinds in ``ns`` injected with the status the controller
    writes (``cm.injected_status``: the conditions and the ``experiment`` the CRDs require),
    replacing the whole object as the controller does (Chaos Mesh's CRDs have no status
    subresource). ``seen`` keeps each resource as it was first met, by uid."""

    def __init__(self, cluster: Cluster, ns: str, plurals: list[str]) -> None:
        self.cluster, self.ns, self.plurals = cluster, ns, plurals
        self.seen: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, daemon=True)

    def __enter__(self) -> ControllerStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _play(self) -> None:
        from chaoslab.platforms import chaosmesh as cm

        while not self._stop.is_set():
            for plural in self.plurals:
                for obj in self.cluster.get(plural, "-n", self.ns)["items"]:
                    self.seen.setdefault(obj["metadata"]["uid"], json.loads(json.dumps(obj)))
                    if cm.condition(obj, "AllInjected") or obj["metadata"].get("deletionTimestamp"):
                        continue
                    obj["status"] = cm.injected_status(obj)
                    self.cluster.kubectl(
                        "replace",
                        "-n",
                        self.ns,
                        "-f",
                        "-",
                        check=False,
                        stdin=json.dumps(obj),
                    )
            self._stop.wait(0.3)
