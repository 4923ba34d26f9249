"""cpu.throttle holds a real busy loop to its quota (by the kernel's CPU accounting); cpu.stress
runs workers and stops them all."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest
from tests.conftest import Children, audit, fault_cgroups

from chaoslab.faults.cpu import CpuStress, CpuThrottle, StressParams, ThrottleParams
from chaoslab.system import cgroups
from chaoslab.targets import ResolvedTarget

from .conftest import process_target, readline, revert_elsewhere, send

BUSY = """
import sys
n = 0
while True:
    n += 1
    if n % 20000 == 0:
        sys.stdout.write(f"{n}\\n"); sys.stdout.flush()
"""


class Counter:
    """Follows the busy loop's printed iteration count, and the CPU time the kernel charged it."""

    def __init__(self, proc: object) -> None:
        self.value = 0
        self._proc = proc
        self._ps = psutil.Process(proc.pid)  # type: ignore[attr-defined]
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:  # type: ignore[attr-defined]
            self.value = int(line)

    def rate(self, seconds: float) -> tuple[float, float]:
        """Iterations per second and cores used (CPU seconds per second) over ``seconds``."""
        a, c, t0 = self.value, self._cpu(), time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        return (self.value - a) / wall, (self._cpu() - c) / wall

    def _cpu(self) -> float:
        # nanoseconds, not the 10 ms ticks of /proc/PID/stat
        return schedstat(self._ps.pid)[0] / 1e9


def test_throttle_slows_a_busy_loop_and_reverts_elsewhere(children: Children, run_id: str) -> None:
    proc = children.python(BUSY)
    before = {k: str(v) for k, v in cgroups.cgroups_of(proc.pid).items()}
    counter = Counter(proc)
    time.sleep(0.5)
    baseline, baseline_cores = counter.rate(1.5)

    fault = CpuThrottle(ThrottleParams(cores=0.03), process_target(proc.pid), run_id=run_id)
    CpuThrottle.check()
    fault.inject()
    reverted = False  # a failed assertion must not leave the fault cgroup behind
    try:
        assert len(fault_cgroups(run_id)) == 1
        assert str(cgroups.cgroups_of(proc.pid)["cpu"]).endswith(f"chaoslab-{run_id}-1")
        time.sleep(0.3)
        throttled, throttled_cores = counter.rate(2.0)
        print(
            f"busy loop: {baseline:.0f} it/s on {baseline_cores:.2f} cores unthrottled, "
            f"{throttled:.0f} it/s on {throttled_cores:.3f} cores at 0.03 cores "
            f"({baseline / max(throttled, 1):.1f}x slower)"
        )
        # Judged by the CPU time the scheduler charged, not by comparing iteration rates: on a busy
        # machine the unthrottled loop itself gets a tenth of a core (it was 3.9x, not 5x, faster
        # beside `stress-ng --cpu 2` and other tests). 0.03 cores is 3 ms per 100 ms period; a
        # period's quota of slop over the 2 s makes 0.0315.
        assert throttled_cores <= 0.04

        revert_elsewhere(fault)
        reverted = True
        assert {k: str(v) for k, v in cgroups.cgroups_of(proc.pid).items()} == before
        # Back in its own cgroup it gets more than the quota allowed: it got 0.09 to 0.12 cores
        # unthrottled at load average 10 to 13, twice this bound.
        _, recovered_cores = counter.rate(2.0)
        assert recovered_cores > 0.045, recovered_cores
    finally:
        if not reverted:
            fault.revert()
    audit(run_id)


def test_throttle_revert_copes_with_a_dead_target_and_its_children(
    children: Children, run_id: str
) -> None:
    # The target forks a child while throttled, then dies: the child is moved back, the cgroup removed.
    proc = children.python("""
        import os, sys, time
        sys.stdin.readline()
        pid = os.fork()
        if pid == 0:
            time.sleep(30); os._exit(0)
        print(pid, flush=True)
        time.sleep(30)
    """)
    fault = CpuThrottle(ThrottleParams(cores=0.5), process_target(proc.pid), run_id=run_id)
    fault.inject()
    send(proc, "go")
    grandchild = int(readline(proc))
    group = cgroups.Group(f"chaoslab-{run_id}-1", controllers=["cpu"])
    assert {proc.pid, grandchild} <= group.pids()
    proc.kill()
    proc.wait()
    fault.revert()
    fault.revert()
    try:
        assert not str(cgroups.cgroups_of(grandchild)["cpu"]).count(run_id)
    finally:
        psutil.Process(grandchild).kill()
    audit(run_id)


def test_stress_runs_workers_in_the_target_cgroup(children: Children, run_id: str) -> None:
    proc = children.python("import time; time.sleep(60)")
    throttle = CpuThrottle(ThrottleParams(cores=0.5), process_target(proc.pid), run_id=run_id)
    throttle.inject()
    stress = CpuStress(StressParams(workers=2, load=100), process_target(proc.pid), run_id=run_id)
    try:
        stress.inject()
        hog = psutil.Process(stress.state["hog"]["pid"])
        time.sleep(1.0)
        family = [hog, *hog.children(recursive=True)]
        assert len(family) >= 3  # stress-ng parent + 2 workers
        cg = Path(cgroups.cgroups_of(hog.pid)["cpu"])
        assert cg.name == f"chaoslab-{run_id}-1"  # competes inside the throttled target's cgroup
        used = sum(p.cpu_times().user + p.cpu_times().system for p in family)
        assert used < 1.0  # 2 workers for ~1s capped at 0.5 cores
    finally:
        revert_elsewhere(stress)
        throttle.revert()
    assert (
        not psutil.pid_exists(stress.state["hog"]["pid"])
        or psutil.Process(stress.state["hog"]["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    audit(run_id)


def schedstat(pid: int) -> tuple[int, int]:
    """Nanoseconds on a CPU and waiting on a run queue, as the scheduler counted them."""
    with open(f"/proc/{pid}/schedstat") as f:
        ran, waited, _ = f.read().split()
    return int(ran), int(waited)


def test_builtin_burner_system_wide(run_id: str) -> None:
    stress = CpuStress(StressParams(workers=1, load=50, engine="builtin"), None, run_id=run_id)
    stress.inject()
    try:
        hog = psutil.Process(stress.state["hog"]["pid"])
        hog.cpu_percent()
        before, t0 = schedstat(hog.pid), time.monotonic()
        time.sleep(2.0)
        after, wall = schedstat(hog.pid), time.monotonic() - t0
        ran, waited = after[0] - before[0], after[1] - before[1]
        share = hog.cpu_percent()
        wanted = (ran + waited) / 1e9 / wall
        print(f"built-in burner at 50%: {share:.0f}% of a CPU, runnable {wanted:.0%} of the time")
        # Its duty cycle is by the wall clock: on a busy machine it gets less CPU than it asks for
        # (8% at load 12) but wants it, running or waiting on a run queue, half of the time.
        assert 0.3 <= wanted <= 0.75
        assert share <= 80
    finally:
        stress.revert()
    assert not psutil.pid_exists(stress.state["hog"]["pid"])


def test_throttle_of_a_cgroup_target_restores_its_old_quota(
    children: Children, run_id: str
) -> None:
    # A target with a cgroup of its own is limited in place, and gets its previous quota back.
    own = cgroups.Group(f"chaoslab-{run_id}-svc", controllers=["cpu"])
    own.create()
    try:
        own.set_cpu(1.5)
        proc = children.python("import time; time.sleep(60)")
        own.add(proc.pid)
        target = ResolvedTarget(
            name="svc", kind="cgroup", spec={"cgroup": own.relpath}, cgroups={"*": own.relpath}
        )
        fault = CpuThrottle(ThrottleParams(cores=0.1), target, run_id=run_id)
        fault.inject()
        assert own.cpu_quota() == pytest.approx(0.1)
        assert proc.pid in own.pids()  # nothing moved
        revert_elsewhere(fault)
        assert own.cpu_quota() == pytest.approx(1.5)
        assert proc.pid in own.pids()
    finally:
        own.remove()
    audit(run_id)
