"""CPU faults: ``cpu.throttle`` (cgroup CPU quota) and ``cpu.stress`` (busy workers)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..system.cgroups import Group
from ..units import Duration
from . import register
from ._cgroupfault import CgroupFault, CgroupFiles
from ._hogfault import HogFault, HogParams
from ._hogs import python_argv
from .base import FaultParams
from .settings import Setting


class ThrottleParams(FaultParams):
    cores: float = Field(gt=0, le=1024, description="CPU time allowed, in cores (0.2 = 20% of one core).")
    period: Duration = Field(0.1, gt=0, description="CFS period the quota applies to.")


@register
class CpuThrottle(CgroupFault[ThrottleParams]):
    name = "cpu.throttle"
    summary = "Limit the target's CPU time with a cgroup quota (cores)."
    controller = "cpu"

    def setting(self, group: Group) -> Setting:
        d, version = group.directory("cpu")
        # v1: the period goes first, so the quota is never judged against a stale period.
        return CgroupFiles(d, ("cpu.cfs_period_us", "cpu.cfs_quota_us") if version == 1 else ("cpu.max",))

    def value(self, group: Group) -> Any:
        period = max(1000, int(self.params.period * 1e6))
        quota = max(1000, int(self.params.cores * period))
        _, version = group.directory("cpu")
        return [str(period), str(quota)] if version == 1 else [f"{quota} {period}"]


class StressParams(HogParams):
    workers: int = Field(1, ge=0, le=256, description="Busy workers; 0 = one per CPU.")
    load: int = Field(100, ge=1, le=100, description="Percent of a CPU each worker keeps busy.")


# Forks workers-1 children (one process group, so stopping the hog stops them all) that each
# keep a CPU busy for `load`% of every 100 ms.
_BURNER = """
import os, sys, time
n, load = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n - 1):
    if os.fork() == 0:
        break
period = 0.1
while True:
    t = time.monotonic()
    end = t + period * load / 100
    while time.monotonic() < end:
        pass
    time.sleep(max(0.0, t + period - time.monotonic()))
"""


@register
class CpuStress(HogFault[StressParams]):
    name = "cpu.stress"
    summary = "Run N busy workers at P% load, in the target's cgroup or system-wide."
    controller = "cpu"

    def _workers(self) -> int:
        return self.params.workers or _cpu_count()

    def stress_ng_argv(self) -> list[str]:
        return ["stress-ng", "--cpu", str(self._workers()), "--cpu-load", str(self.params.load), "--quiet"]

    def builtin_argv(self) -> list[str]:
        return python_argv(_BURNER, str(self._workers()), str(self.params.load))


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) or 1
