"""Regressions of issue 13, part 1: faults that overlap on the same setting leaked after a HELD
run with exit 0. Each test runs the real ``chaoslab run`` and reads the setting from the system.

The schedules make the first fault end first (A at 0 for 1 s, B at 0.5 s for 2 s): before the
one-owner design, A put back the value it saw (the original) while B was still in force, and B
then put back the value *it* saw (A's), which stayed."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import PY, Lab, Scratch, child_env, fault_cgroups

HEAD = """
title: overlap
targets:
  cg: {{cgroup: {rel}}}
  v: {{pid: {pid}}}
  link: {{proxy: db, api: "{api}"}}
recovery: 0s
max_duration: 10m
method:
"""


def experiment(scratch: Scratch, *steps: str, api: str = "http://127.0.0.1:9") -> str:
    return HEAD.format(rel=scratch.rel, pid=scratch.victim.pid, api=api) + "".join(
        f"  - {s}\n" for s in steps
    )


def test_overlapping_cpu_quota_on_a_cgroup_comes_back(lab: Lab, scratch: Scratch) -> None:
    before = (scratch.read("cpu", "cpu.cfs_quota_us"), scratch.read("cpu", "cpu.cfs_period_us"))
    run = lab.start(
        experiment(
            scratch,
            "{fault: cpu.throttle, target: cg, at: 0s, duration: 1s, cores: 0.3}",
            "{fault: cpu.throttle, target: cg, at: 500ms, duration: 4s, cores: 0.5}",
        )
    )
    assert run.read_until(" revert "), run.text()
    # A ended while B goes on: B's quota (the newest holder) is in force, not the original.
    assert scratch.read("cpu", "cpu.cfs_quota_us") == "50000"
    assert run.finish() == 0, run.text()
    assert (
        scratch.read("cpu", "cpu.cfs_quota_us"),
        scratch.read("cpu", "cpu.cfs_period_us"),
    ) == before
    assert lab.owner_records() == [] and lab.ledger_entries() == []


def test_overlapping_rlimits_come_back(lab: Lab, scratch: Scratch) -> None:
    assert scratch.nofile() == (2000, 10000)
    run = lab.start(
        experiment(
            scratch,
            "{fault: process.rlimit, target: v, at: 0s, duration: 1s, resource: nofile, soft: 64}",
            "{fault: process.rlimit, target: v, at: 500ms, duration: 4s, resource: nofile, soft: 128}",
        )
    )
    assert run.read_until(" revert "), run.text()
    assert scratch.nofile() == (128, 10000)
    assert run.finish() == 0, run.text()
    assert scratch.nofile() == (2000, 10000)


def test_overlapping_cgroup_moves_put_the_process_back(lab: Lab, scratch: Scratch) -> None:
    before = scratch.membership()
    assert before["cpu"] == f"/{scratch.rel}"
    run = lab.start(
        experiment(
            scratch,
            "{fault: cpu.throttle, target: v, at: 0s, duration: 1s, cores: 0.3}",
            "{fault: cpu.throttle, target: v, at: 500ms, duration: 4s, cores: 0.5}",
        )
    )
    assert run.read_until(" revert "), run.text()
    # A's fault cgroup is gone; the victim is in B's, which still exists and still throttles.
    now = scratch.membership()["cpu"]
    assert now.startswith(f"/chaoslab-{run.run_id}-"), now
    assert Path(f"/sys/fs/cgroup/cpu{now}/cpu.cfs_quota_us").read_text().strip() == "50000"
    assert run.finish() == 0, run.text()
    assert scratch.membership() == before
    assert fault_cgroups(run.run_id) == []


def test_repeated_pids_limit_comes_back(lab: Lab, scratch: Scratch) -> None:
    assert scratch.read("pids", "pids.max") == "max"
    run = lab.start(
        experiment(
            scratch, "{fault: pids.limit, target: cg, max: 60, repeat: 2, every: 1s, duration: 2s}"
        )
    )
    assert run.finish() == 0, run.text()
    assert scratch.read("pids", "pids.max") == "max"


def test_repeated_pids_limit_killed_between_the_reverts_then_recovered(
    lab: Lab, scratch: Scratch
) -> None:
    # The step with wider gaps (3 s between the two reverts), so a loaded machine still
    # reads between them.
    run = lab.start(
        experiment(
            scratch, "{fault: pids.limit, target: cg, max: 60, repeat: 2, every: 3s, duration: 4s}"
        )
    )
    assert run.read_until(" revert "), run.text()  # the first one ended (t = 4 s), the second holds
    assert scratch.read("pids", "pids.max") == "60"
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait(timeout=60)
    rec = lab.recover()
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert scratch.read("pids", "pids.max") == "max"
    assert lab.owner_records() == [] and lab.ledger_entries() == []


@pytest.fixture
def proxy_link() -> Iterator[tuple[str, httpx.Client]]:
    proc = subprocess.Popen(
        [PY, "-m", "chaoslab.proxy", "serve", "--port", "0"],
        env=child_env(Path("/nonexistent")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        api = line[line.index("http://") :].split()[0].rstrip("/.,")
        http = httpx.Client(base_url=api, timeout=10)
        r = http.post(
            "/proxies", json={"name": "db", "upstream": "127.0.0.1:9", "listen": "127.0.0.1:0"}
        )
        assert r.status_code == 201, r.text
        yield api, http
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_overlapping_link_downs_stack(
    lab: Lab, scratch: Scratch, proxy_link: tuple[str, httpx.Client]
) -> None:
    api, http = proxy_link
    run = lab.start(
        experiment(
            scratch,
            "{fault: network.down, target: link, at: 0s, duration: 1s}",
            "{fault: network.down, target: link, at: 500ms, duration: 4s}",
            api=api,
        )
    )
    assert run.read_until(" revert "), run.text()
    assert http.get("/proxies/db").json()["enabled"] is False  # B still holds the link down
    assert run.finish() == 0, run.text()
    assert http.get("/proxies/db").json()["enabled"] is True


def stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "T"


def test_overlapping_pauses_stack(lab: Lab, scratch: Scratch) -> None:
    run = lab.start(
        experiment(
            scratch,
            "{fault: process.pause, target: v, at: 0s, duration: 1s, method: signal}",
            "{fault: process.pause, target: v, at: 500ms, duration: 4s, method: signal}",
        )
    )
    assert run.read_until(" revert "), run.text()
    assert stopped(scratch.victim.pid)  # B still holds it stopped
    assert run.finish() == 0, run.text()
    assert not stopped(scratch.victim.pid)


def has_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


def test_a_hard_limit_that_could_not_be_raised_back_is_refused(lab: Lab, scratch: Scratch) -> None:
    if has_sys_resource():
        pytest.skip("with CAP_SYS_RESOURCE a lowered hard limit can be raised back")
    run = lab.start(
        experiment(
            scratch,
            "{fault: process.rlimit, target: v, at: 0s, duration: 1s, resource: nofile, soft: 64, hard: 100}",
        )
    )
    assert run.finish() == 4, run.text()
    assert "CAP_SYS_RESOURCE" in run.text()
    assert scratch.nofile() == (2000, 10000)  # nothing was changed
    assert lab.ledger_entries() == [] and lab.owner_records() == []
