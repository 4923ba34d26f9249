"""Container faults on the real dockerd, through ``chaoslab run``: each visibly changes a probe or
what the kernel and Docker show, and each is reverted on normal end, SIGINT, SIGTERM, halt and
SIGKILL + ``chaoslab recover``, checked from the system itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.conftest import stopped

from .conftest import (
    Lab,
    cgroup_file,
    chaoslab,
    docker,
    http_ok,
    inspect,
    journal,
    nft_tables_in,
    only_run_dir,
    qdisc_in,
)

KNOBS = [
    ("cpu", "cpu.cfs_quota_us"),
    ("cpu", "cpu.cfs_period_us"),
    ("memory", "memory.limit_in_bytes"),
    ("pids", "pids.max"),
    ("blkio", "blkio.throttle.write_bps_device"),
]

EXPERIMENT = """
title: container faults, interrupted
targets:
  paused: {{container: {a}}}
  net: {{container: {b}}}
  limited: {{container: {c}}}
  stopped: {{container: {d}}}
  sigstopped: {{container: {e}}}
method:
  - {{fault: container.pause, target: paused, at: 0s, duration: 60s}}
  - {{fault: network.partition, target: net, at: 0s, duration: 60s, ports: [8080]}}
  - {{fault: network.bandwidth.tc, target: net, at: 0s, duration: 60s, rate: 1mbit}}
  - {{fault: cpu.throttle, target: limited, at: 0s, duration: 60s, cores: 0.2}}
  - {{fault: memory.limit, target: limited, at: 0s, duration: 60s, limit: 256MB}}
  - {{fault: pids.limit, target: limited, at: 0s, duration: 60s, max: 50}}
  - {{fault: disk.io_throttle, target: limited, at: 0s, duration: 60s, path: /var/lib/docker, write_bps: 1MiB}}
  - {{fault: cpu.stress, target: limited, at: 0s, duration: 60s, workers: 1, load: 10}}
  - {{fault: memory.stress, target: limited, at: 0s, duration: 60s, size: 16MB}}
  - {{fault: io.stress, target: limited, at: 0s, duration: 60s, size: 1MiB}}
  - {{fault: disk.fill, target: limited, at: 0s, duration: 60s, percent: {fill}}}
  - {{fault: container.stop, target: stopped, at: 0s, duration: 60s, timeout: 0s}}
  - {{fault: process.pause, target: sigstopped, at: 0s, duration: 60s, method: signal}}
max_duration: 2m
"""
FAULTS = 13


def _fill_percent() -> float:
    st = os.statvfs("/var/lib/docker")
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    usable = used + st.f_bavail * st.f_frsize
    return round(used / usable * 100 + 0.3, 2)


def _ledger(state: Path) -> tuple[str, list[dict[str, Any]]]:
    runs = [d for d in (state / "ledger").iterdir() if d.is_dir()]
    assert len(runs) == 1
    out = []
    for f in runs[0].iterdir():
        try:
            out.append(json.loads(f.read_text()))
        except (ValueError, IsADirectoryError):
            continue
    return runs[0].name, out


@pytest.mark.parametrize("how", ["sigint", "sigterm", "halt", "sigkill"])
def test_interrupted_run_leaves_nothing_in_any_container(
    how: str, lab: Lab, tmp_path: Path
) -> None:
    a, ip_a = lab.web("a")
    b, ip_b = lab.web("b")
    c, _ = lab.web("c")
    d, _ = lab.run("d", "sleep", "600")
    e, _ = lab.run("e", "sleep", "600")
    cid = inspect(c)["Id"]
    merged = Path(inspect(c)["GraphDriver"]["Data"]["MergedDir"])
    original = {k: cgroup_file(cid, *k) for k in KNOBS}
    pid_b, pid_e = inspect(b)["State"]["Pid"], inspect(e)["State"]["Pid"]
    qdisc_before = qdisc_in(pid_b)
    assert http_ok(f"http://{ip_a}:8080/health") and http_ok(f"http://{ip_b}:8080/health")

    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT.format(a=a, b=b, c=c, d=d, e=e, fill=_fill_percent()))
    state = tmp_path / "state"
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(state)}
    runner = subprocess.Popen(
        chaoslab("run", "--runs-dir", str(tmp_path / "runs"), "--report", "json", str(exp)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert runner.stdout is not None
        injected, lines = 0, []
        deadline = time.monotonic() + 90
        while injected < FAULTS and time.monotonic() < deadline:
            line = runner.stdout.readline()
            if not line:
                break
            lines.append(line)
            injected += " inject " in line
        assert injected == FAULTS, "".join(lines)
        time.sleep(0.5)
        run_id, entries = _ledger(state)
        hogs = [
            int(x["state"]["hog"]["pid"])
            for x in entries
            if "pid" in ((x.get("state") or {}).get("hog") or {})
        ]
        assert len(hogs) == 3

        # Every fault is really there, as Docker and the kernel show it.
        assert inspect(a)["State"]["Paused"] is True
        assert not http_ok(f"http://{ip_a}:8080/health")
        assert not http_ok(f"http://{ip_b}:8080/health")
        assert f"chaoslab_{run_id}".replace("-", "_") in nft_tables_in(pid_b)
        assert "tbf" in qdisc_in(pid_b)
        assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == "20000"
        assert int(cgroup_file(cid, "memory", "memory.limit_in_bytes")) <= 256_000_000
        assert cgroup_file(cid, "pids", "pids.max") == "50"
        assert cgroup_file(cid, "blkio", "blkio.throttle.write_bps_device").endswith(
            str(1024 * 1024)
        )
        members = set(Path(f"/sys/fs/cgroup/memory/docker/{cid}/cgroup.procs").read_text().split())
        assert {str(h) for h in hogs} <= members  # the hogs run inside the container's cgroup
        assert list(merged.glob(".chaoslab-fill*")) and list(merged.glob(".chaoslab-io-*"))
        assert inspect(d)["State"]["Running"] is False
        assert stopped(pid_e)  # a SIGSTOP lands when the process next runs (busy machine)

        if how in ("sigint", "sigterm"):
            runner.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
            assert runner.wait(timeout=90) == 3, "".join(lines) + runner.stdout.read()
        elif how == "halt":
            h = subprocess.run(
                chaoslab("halt", "--reason", "test"),
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert h.returncode == 0, h.stderr
            assert runner.wait(timeout=90) == 3, "".join(lines) + runner.stdout.read()
            subprocess.run(chaoslab("halt", "--clear"), capture_output=True, env=env, timeout=60)
        else:
            runner.kill()
            runner.wait(timeout=10)
            assert inspect(a)["State"]["Paused"] is True  # nobody reverted yet
            rec = subprocess.run(
                chaoslab("recover"), capture_output=True, text=True, timeout=180, env=env
            )
            assert rec.returncode == 0, rec.stdout + rec.stderr
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()

    assert inspect(a)["State"]["Paused"] is False
    assert http_ok(f"http://{ip_a}:8080/health", timeout=5) and http_ok(
        f"http://{ip_b}:8080/health", timeout=5
    )
    assert "chaoslab" not in nft_tables_in(pid_b)
    assert qdisc_in(pid_b) == qdisc_before
    assert {k: cgroup_file(cid, *k) for k in KNOBS} == original
    for pid in hogs:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert Path(f"/sys/fs/cgroup/memory/docker/{cid}/cgroup.procs").read_text().split() == [
        str(inspect(c)["State"]["Pid"])
    ]
    assert list(merged.glob(".chaoslab-*")) == []
    assert inspect(d)["State"]["Running"] is True
    assert psutil.Process(pid_e).status() != psutil.STATUS_STOPPED
    assert not (state / "ledger" / run_id).exists() or _ledger(state)[1] == []


NORMAL = """
title: each container fault shows in a probe
targets:
  a: {{container: {a}}}
  b: {{container: {b}}}
  c: {{container: {c}}}
probes:
  pa: {{http: {{url: "http://{ip_a}:8080/health"}}, every: 100ms, timeout: 1s}}
  pb: {{http: {{url: "http://{ip_b}:8080/health"}}, every: 100ms, timeout: 1s}}
  pc: {{http: {{url: "http://{ip_c}:8080/health"}}, every: 100ms, timeout: 1s}}
  ca: {{container: {{target: a}}, every: 100ms, timeout: 2s}}
  cc: {{container: {{target: c}}, every: 100ms, timeout: 2s}}
method:
  - {{fault: container.pause, target: a, at: 2s, duration: 4s}}
  - {{fault: network.partition, target: b, at: 2s, duration: 4s}}
  - {{fault: container.stop, target: c, at: 2s, duration: 4s, timeout: 0s}}
recovery: 3s
"""


def _samples(records: list[dict[str, Any]], probe: str, start: float, end: float) -> list[bool]:
    return [
        r["ok"]
        for r in records
        if r.get("type") == "sample" and r["probe"] == probe and start <= r["t"] < end
    ]


def test_each_fault_shows_in_a_probe_and_is_gone_after_a_normal_end(
    lab: Lab, tmp_path: Path
) -> None:
    a, ip_a = lab.web("a")
    b, ip_b = lab.web("b")
    c, ip_c = lab.web("c")
    exp = tmp_path / "exp.yaml"
    exp.write_text(NORMAL.format(a=a, b=b, c=c, ip_a=ip_a, ip_b=ip_b, ip_c=ip_c))
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run(
        chaoslab("run", "--runs-dir", str(tmp_path / "runs"), str(exp)),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    records = journal(run_dir)
    faults = {(r["fault"], r["action"]): r["t"] for r in records if r.get("type") == "fault"}
    t_phase = next(r["t"] for r in records if r.get("type") == "phase" and r["name"] == "fault")
    for fault, probes in (
        ("container.pause", ["pa", "ca"]),
        ("network.partition", ["pb"]),
        ("container.stop", ["pc", "cc"]),
    ):
        t_in, t_out = faults[(fault, "inject")], faults[(fault, "revert")]
        for probe in probes:
            before = _samples(records, probe, 0, t_phase - 0.3)
            # The inject record is written once the action is done; every revert is due 4 s
            # after the fault phase began, and a request sent up to a probe timeout (1 s)
            # before may be answered just after it: stay inside, generously.
            during = _samples(records, probe, t_in + 0.3, t_phase + 2.8)
            after = _samples(records, probe, t_out + 1.5, 1e9)
            assert before and all(before), (fault, probe)
            assert during and not any(during), (fault, probe, during)
            assert after and all(after), (fault, probe, after)
    # nothing left, from the system
    assert inspect(a)["State"]["Paused"] is False
    assert inspect(c)["State"]["Running"] is True
    assert "chaoslab" not in nft_tables_in(inspect(b)["State"]["Pid"])
    # Docker's own record of the stop and start made it into the journal
    kinds = [(r["container"], r["kind"]) for r in records if r.get("source") == "docker"]
    assert (
        (c, "die") in kinds
        and (c, "start") in kinds
        and (a, "pause") in kinds
        and (a, "unpause") in kinds
    )


def test_container_kill_restart_and_remove(lab: Lab, tmp_path: Path) -> None:
    from chaoslab.faults import get
    from chaoslab.targets import TargetSpec, resolve

    k, _ = lab.run("k", "sleep", "600", opts=("--restart", "always"))
    r, _ = lab.run("r", "sleep", "600")
    x, _ = lab.run("x", "sleep", "600")
    started = inspect(r)["State"]["StartedAt"]

    def fault(name: str, target: str, **params: Any) -> Any:
        cls = get(name)
        return cls(
            cls.Params.model_validate(params),
            resolve(target, TargetSpec.model_validate({"container": target})),
            run_id=lab.prefix,
        )

    fault("container.kill", k, signal="SIGKILL").inject()
    deadline = time.monotonic() + 30
    while inspect(k)["RestartCount"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inspect(k)["RestartCount"] == 1  # killed for real, and Docker's policy brought it back
    # Docker's own kill API counts as a manual stop: the policy does not restart it (why the
    # default is to signal the main process, a crash as Docker sees it)
    kd, _ = lab.run("kd", "sleep", "600", opts=("--restart", "always"))
    fault("container.kill", kd, via="docker").inject()
    time.sleep(2)
    assert inspect(kd)["State"]["Status"] == "exited" and inspect(kd)["RestartCount"] == 0
    fault("container.restart", r, timeout=0).inject()
    assert inspect(r)["State"]["StartedAt"] != started and inspect(r)["State"]["Running"]
    fault("container.remove", x, allow_remove=True).inject()
    assert docker("ps", "-aq", "--filter", f"name=^{x}$") == ""
    assert shutil.which("docker")
