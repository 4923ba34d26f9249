"""Network faults inside a container's namespace (a partition between two named containers, tbf
bandwidth) and a real OOM kill under memory.limit with Docker's restart policy, recorded in the
journal from Docker's own events."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from chaoslab.faults import get
from chaoslab.targets import TargetSpec, resolve

from .conftest import Lab, chaoslab, docker, inspect, journal, nft_tables_in, only_run_dir, qdisc_in


def fault(name: str, target: str, run_id: str, **params: Any) -> Any:
    cls = get(name)
    return cls(
        cls.Params.model_validate(params),
        resolve(target, TargetSpec.model_validate({"container": target})),
        run_id=run_id,
    )


def fetch_from(container: str, url: str, timeout: int = 2) -> bool:
    """GET from inside ``container`` (busybox nc: the static busybox's wget crashes on name lookups)."""
    host, port = url.split("/")[2].split(":")
    path = "/" + url.split("/", 3)[3]
    proc = subprocess.run(
        [
            "docker",
            "exec",
            container,
            "sh",
            "-c",
            f'printf "GET {path} HTTP/1.0\\r\\n\\r\\n" | nc -w {timeout} {host} {port}',
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.stdout.startswith("HTTP/1.1 200")


def test_partition_between_two_named_containers(lab: Lab) -> None:
    a, _ = lab.web("a")
    b, ip_b = lab.web("b")
    _, ip_c = lab.web("c")
    assert fetch_from(a, f"http://{ip_b}:8080/health") and fetch_from(
        a, f"http://{ip_c}:8080/health"
    )
    part = fault("network.partition", a, lab.prefix, peers=[b])
    part.inject()
    try:
        assert not fetch_from(a, f"http://{ip_b}:8080/health")  # a cannot reach b
        assert not fetch_from(
            b,
            f"http://{inspect(a)['NetworkSettings']['Networks'][lab.network]['IPAddress']}:8080/health",
        )
        assert fetch_from(a, f"http://{ip_c}:8080/health")  # but everyone else still can
        assert fetch_from(b, f"http://{ip_c}:8080/health")
        assert "chaoslab" in nft_tables_in(inspect(a)["State"]["Pid"])
        assert "chaoslab" not in nft_tables_in(inspect(b)["State"]["Pid"])  # only in a's namespace
    finally:
        part.revert()
    assert fetch_from(a, f"http://{ip_b}:8080/health")
    assert "chaoslab" not in nft_tables_in(inspect(a)["State"]["Pid"])


def _download_seconds(url: str) -> float:
    start = time.monotonic()
    subprocess.run(["curl", "-sf", "-o", "/dev/null", "-m", "30", url], check=True, timeout=40)
    return time.monotonic() - start


def test_tbf_bandwidth_in_the_container_namespace(lab: Lab) -> None:
    name, ip = lab.web("big")
    # 512 KiB at 1 mbit/s takes about 4 s; unshaped, a few ms
    docker("exec", name, "sh", "-c", "head -c 524288 /dev/zero > /www/big")
    url = f"http://{ip}:8080/big"
    assert _download_seconds(url) < 1.5
    pid = inspect(name)["State"]["Pid"]
    before = qdisc_in(pid)
    tbf = fault("network.bandwidth.tc", name, lab.prefix, rate="1mbit")
    tbf.inject()
    try:
        assert "tbf" in qdisc_in(pid)
        assert _download_seconds(url) > 3.0
    finally:
        tbf.revert()
    assert qdisc_in(pid) == before
    assert _download_seconds(url) < 1.5


OOM = """
title: OOM kill under a container memory limit
targets:
  hungry: {{container: {name}}}
probes:
  up: {{container: {{target: hungry}}, every: 100ms, timeout: 2s}}
method:
  - {{fault: memory.limit, target: hungry, at: 1s, duration: 12s, limit: 48MB}}
recovery: 4s
"""


def test_memory_limit_oom_kill_and_restart_recorded_from_docker_events(
    lab: Lab, tmp_path: Path
) -> None:
    # 3 s after each start, and every 0.5 s after that, the container's shell grows to ~90 MB for
    # a moment: harmless until the limit. (cgroup v1 refuses a limit below what is in use: a
    # limit that comes mid-burst, as on a busy machine, is taken once the burst is over.)
    name, _ = lab.run(
        "oom",
        "sh",
        "-c",
        "sleep 3; while true; do x=$(head -c 90000000 /dev/zero | tr '\\0' a); unset x; sleep 0.5; done",
        opts=("--restart", "always", "--health-cmd", "true", "--health-interval", "500ms"),
    )
    cid = inspect(name)["Id"]
    limit_file = Path(f"/sys/fs/cgroup/memory/docker/{cid}/memory.limit_in_bytes")
    original = limit_file.read_text()
    exp = tmp_path / "exp.yaml"
    exp.write_text(OOM.format(name=name))
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run(
        chaoslab("run", "--runs-dir", str(tmp_path / "runs"), str(exp)),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    info = inspect(name)
    assert info["RestartCount"] >= 1 and info["State"]["Running"]  # Docker's policy brought it back
    assert limit_file.read_text() == original  # the cgroup outlived the restart; its value is back
    run_dir = only_run_dir(tmp_path / "runs")
    events = [
        r for r in journal(run_dir) if r.get("source") == "docker" and r.get("container") == name
    ]
    kinds = [e["kind"] for e in events]
    assert "oom" in kinds and "die" in kinds and "start" in kinds
    # Docker gives a restarted container a fresh cgroup with its own settings: the fault puts its
    # limit back, so the container is OOM-killed again while the fault lasts (a crash loop; each
    # turn is a restart, a tick and the shell's 3 s: 12 s of fault leave room for a slow turn)
    assert kinds.count("oom") >= 2, kinds
    assert any(r.get("type") == "fault" and r["action"] == "tick" for r in journal(run_dir))
    die = next(e for e in events if e["kind"] == "die")
    assert die["exit_code"] == 137
    start = next(e for e in events if e["kind"] == "start" and e["t"] > die["t"])
    assert start["restart_policy"] == "always"
    report = (run_dir / "report.md").read_text()
    assert f"{name} was OOM-killed at" in report and "restarted by Docker's always policy" in report
    # Docker's HEALTHCHECK after the restart, from its health_status events
    assert any(
        e["kind"] == "health_status" and e.get("status") == "healthy" and e["t"] > start["t"]
        for e in events
    )
    assert ", healthy again at" in report
    # the container probe saw the restarts
    samples = [r for r in journal(run_dir) if r.get("type") == "sample" and r["probe"] == "up"]
    assert samples[0]["value"] == 0 and samples[-1]["value"] >= 1
