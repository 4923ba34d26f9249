"""memory.limit gets a real OOM kill (seen in the cgroup's counter); memory.stress holds X bytes;
both revert."""

from __future__ import annotations

import signal
import threading
import time

import psutil
import pytest
from tests.conftest import Children, audit

from chaoslab.errors import FaultError
from chaoslab.faults.memory import LimitParams, MemoryLimit, MemoryStress, StressParams
from chaoslab.system import cgroups
from chaoslab.targets import ProcessRef, ResolvedTarget

from .conftest import process_target, readline, revert_elsewhere, send

GROW = """
import sys, time
sys.stdin.readline()
blocks = []
for i in range(400):
    blocks.append(bytearray(1024 * 1024))
    for j in range(0, len(blocks[-1]), 4096):
        blocks[-1][j] = 1
    time.sleep(0.002)
print("survived", flush=True)
time.sleep(30)
"""


def test_memory_limit_gets_a_real_oom_kill(children: Children, run_id: str) -> None:
    proc = children.python(GROW)
    fault = MemoryLimit(LimitParams(limit="64MiB"), process_target(proc.pid), run_id=run_id)
    MemoryLimit.check()
    fault.inject()
    group = cgroups.Group(fault.state["cgroup"]["relpath"], controllers=["memory"])
    assert group.memory_limit() == 64 * 1024 * 1024
    assert group.oom_kills() == 0
    send(proc, "go")
    assert proc.wait(timeout=30) == -signal.SIGKILL
    kills = group.oom_kills()
    print(f"memory.limit 64MiB: child killed by SIGKILL, cgroup oom_kill counter = {kills}")
    assert kills >= 1
    revert_elsewhere(fault)  # the target is dead: revert still removes the cgroup
    audit(run_id)


def test_memory_limit_leaves_a_small_process_alone(children: Children, run_id: str) -> None:
    proc = children.python(GROW.replace("range(400)", "range(16)"))
    fault = MemoryLimit(LimitParams(limit="256MiB"), process_target(proc.pid), run_id=run_id)
    fault.inject()
    send(proc, "go")
    assert readline(proc).strip() == "survived"
    fault.revert()
    assert proc.poll() is None
    audit(run_id)


def test_memory_stress_holds_the_size(run_id: str) -> None:
    fault = MemoryStress(StressParams(size="128MiB"), None, run_id=run_id)
    fault.inject()
    try:
        hog = psutil.Process(fault.state["hog"]["pid"])
        deadline = time.monotonic() + 15
        rss = 0
        while time.monotonic() < deadline:
            rss = sum(p.memory_info().rss for p in [hog, *hog.children(recursive=True)])
            if rss >= 120 * 2**20:
                break
            time.sleep(0.1)
        print(f"memory.stress 128MiB: hog resident {rss / 2**20:.0f} MiB")
        assert 120 * 2**20 <= rss <= 200 * 2**20
    finally:
        revert_elsewhere(fault)
    assert (
        not psutil.pid_exists(fault.state["hog"]["pid"])
        or psutil.Process(fault.state["hog"]["pid"]).status() == psutil.STATUS_ZOMBIE
    )


def test_memory_limit_in_place_below_usage(children: Children, run_id: str) -> None:
    # A service with a memory cgroup of its own is limited in place. Below its usage, v2 OOM-kills
    # at once; v1 cannot reclaim (no swap) and refuses: the fault says so and restores the limit.
    own = cgroups.Group(f"chaoslab-{run_id}-svc", controllers=["memory"])
    own.create()
    try:
        proc = children.python(GROW.replace("range(400)", "range(96)"))
        own.add(proc.pid)
        send(proc, "go")
        assert readline(proc).strip() == "survived"
        target = ResolvedTarget(
            name="svc",
            kind="service",
            spec={"service": "svc"},
            processes=[ProcessRef.of(proc.pid)],
            cgroups={k: str(v) for k, v in own.dirs.items()},
        )
        fault = MemoryLimit(LimitParams(limit="32MiB"), target, run_id=run_id)
        try:
            fault.inject()
        except FaultError as exc:
            assert own.versions["memory"] == 1
            print(f"memory.limit below usage on cgroup v1: {exc}")
            assert own.memory_limit() is None  # restored
            assert proc.poll() is None
        else:
            assert proc.wait(timeout=10) == -signal.SIGKILL
            assert own.oom_kills() >= 1
            revert_elsewhere(fault)
            assert own.memory_limit() is None
    finally:
        own.remove()
    audit(run_id)


BURST = """
import sys, time
sys.stdin.readline()  # in its cgroup: what it allocates from now on is charged there
block = bytearray(64 * 1024 * 1024)
for j in range(0, len(block), 4096):
    block[j] = 1
print("big", flush=True)
sys.stdin.readline()
del block
print("freed", flush=True)
time.sleep(30)
"""


def test_memory_limit_below_a_burst_is_taken_once_the_burst_is_over(children: Children, run_id: str) -> None:
    """cgroup v1 refuses a limit below the memory in use (EBUSY). A target above the limit for a
    burst gets it once the burst is over, instead of the fault being refused: a busy machine put
    an OOM test's injection in the middle of its container's 90 MB burst and the run ended ERROR."""
    own = cgroups.Group(f"chaoslab-{run_id}-burst", controllers=["memory"])
    own.create()
    try:
        if own.versions["memory"] != 1:
            pytest.skip("cgroup v2 OOM-kills below usage at once: there is no refusal to wait out")
        proc = children.python(BURST)
        own.add(proc.pid)
        send(proc, "go")
        assert readline(proc).strip() == "big"
        assert own.memory_usage() >= 64 * 1024 * 1024
        target = ResolvedTarget(name="svc", kind="service", spec={"service": "svc"},
                                processes=[ProcessRef.of(proc.pid)],
                                cgroups={k: str(v) for k, v in own.dirs.items()})
        fault = MemoryLimit(LimitParams(limit="32MiB"), target, run_id=run_id)
        result: list[BaseException | None] = []

        def inject() -> None:
            try:
                fault.inject()
                result.append(None)
            except BaseException as exc:  # handed to the test's thread
                result.append(exc)

        t = threading.Thread(target=inject)
        t.start()
        time.sleep(0.5)
        assert not result, result  # still waiting: 64 MiB in use, above 32 MiB
        send(proc, "free")
        assert readline(proc).strip() == "freed"
        t.join(timeout=10)
        assert result == [None]
        assert own.memory_limit() == 32 * 1024 * 1024
        assert proc.poll() is None
        fault.revert()
        assert own.memory_limit() is None
    finally:
        own.remove()
    audit(run_id)
