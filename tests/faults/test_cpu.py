"""cpu.throttle slows a real busy loop >= 5x; cpu.stress runs workers and stops them all."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest
from tests.conftest import Children, audit, fault_cgroups

from chaoslab import cgroups
from chaoslab.faults.cpu import CpuStress, CpuThrottle, StressParams, ThrottleParams
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
    """Follows the busy loop's printed iteration count."""

    def __init__(self, proc: object) -> None:
        self.value = 0
        self._proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:  # type: ignore[attr-defined]
            self.value = int(line)

    def rate(self, seconds: float) -> float:
        a, t0 = self.value, time.monotonic()
        time.sleep(seconds)
        return (self.value - a) / (time.monotonic() - t0)


def test_throttle_slows_a_busy_loop_and_reverts_elsewhere(children: Children, run_id: str) -> None:
    proc = children.python(BUSY)
    before = {k: str(v) for k, v in cgroups.cgroups_of(proc.pid).items()}
    counter = Counter(proc)
    time.sleep(0.5)
    baseline = counter.rate(1.5)

    fault = CpuThrottle(ThrottleParams(cores=0.03), process_target(proc.pid), run_id=run_id)
    CpuThrottle.check()
    fault.inject()
    assert len(fault_cgroups(run_id)) == 1
    assert str(cgroups.cgroups_of(proc.pid)["cpu"]).endswith(f"chaoslab-{run_id}-1")
    time.sleep(0.3)
    throttled = counter.rate(2.0)
    print(
        f"busy loop: {baseline:.0f} it/s unthrottled, {throttled:.0f} it/s at 0.03 cores "
        f"({baseline / max(throttled, 1):.1f}x slower)"
    )
    assert throttled * 5 <= baseline

    revert_elsewhere(fault)
    assert {k: str(v) for k, v in cgroups.cgroups_of(proc.pid).items()} == before
    recovered = counter.rate(1.0)
    assert recovered > throttled * 3
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


def test_builtin_burner_system_wide(run_id: str) -> None:
    stress = CpuStress(StressParams(workers=1, load=50, engine="builtin"), None, run_id=run_id)
    stress.inject()
    try:
        hog = psutil.Process(stress.state["hog"]["pid"])
        hog.cpu_percent()
        time.sleep(1.0)
        share = hog.cpu_percent()
        print(f"built-in burner at 50%: {share:.0f}% of a CPU")
        assert 10 <= share <= 80  # wall-clock duty cycle: less when the CPUs are busy
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
