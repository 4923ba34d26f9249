"""CPU faults: ``cpu.throttle`` (cgroup CPU quota) and ``cpu.stress`` (busy workers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from .. import cgroups, doctor
from ..cgroups import Group
from ..errors import FaultError
from ..targets import ResolvedTarget
from ..units import Duration
from . import register
from ._cgroupfault import CGROUP_TARGETS, CgroupFault
from ._hogs import python_argv, spawn, stop
from .base import Fault, FaultParams


class ThrottleParams(FaultParams):
    cores: float = Field(gt=0, le=1024, description="CPU time allowed, in cores (0.2 = 20% of one core).")
    period: Duration = Field(0.1, gt=0, description="CFS period the quota applies to.")


@register
class CpuThrottle(CgroupFault):
    name = "cpu.throttle"
    summary = "Limit the target's CPU time with a cgroup quota (cores)."
    Params = ThrottleParams
    controller = "cpu"

    def apply(self, group: Group) -> None:
        assert isinstance(self.params, ThrottleParams)
        group.set_cpu(self.params.cores, period_us=max(1000, int(self.params.period * 1e6)))

    def read(self, group: Group) -> Any:
        return group.cpu_quota()

    def restore(self, group: Group, old: Any) -> None:
        group.set_cpu(None if old is None else float(old))


class StressParams(FaultParams):
    workers: int = Field(1, ge=0, le=256, description="Busy workers; 0 = one per CPU.")
    load: int = Field(100, ge=1, le=100, description="Percent of a CPU each worker keeps busy.")
    engine: Literal["auto", "stress-ng", "builtin"] = Field(
        "auto", description="stress-ng when installed (auto), or the built-in Python burner."
    )


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


def target_cgroup_dirs(target: ResolvedTarget | None, controller: str) -> list[str]:
    """The target's own cgroup for ``controller`` (a hog placed there competes with the target)."""
    if target is None:
        return []
    if target.kind == "cgroup":
        rel = target.cgroups.get("*") or str(target.spec.get("cgroup", ""))
        return [str(d) for d in Group(rel, controllers=[controller]).dirs.values()]
    dirs: dict[str, Path] = {k: Path(v) for k, v in target.cgroups.items()}
    if not dirs:
        live = [r for r in target.processes if r.alive()]
        if not live:
            raise FaultError(f"{target.describe()} has no live process to share a cgroup with")
        dirs = cgroups.cgroups_of(live[0].pid)
    d = dirs.get(controller) or dirs.get(cgroups.V2)
    return [str(d)] if d is not None else []


@register
class CpuStress(Fault):
    name = "cpu.stress"
    summary = "Run N busy workers at P% load, in the target's cgroup or system-wide."
    Params = StressParams
    target_kinds = CGROUP_TARGETS
    target_optional = True

    @classmethod
    def check(cls) -> None:
        doctor.require("root")

    def inject(self) -> None:
        assert isinstance(self.params, StressParams)
        workers = self.params.workers or (_cpu_count())
        use_ng = self.params.engine == "stress-ng" or (
            self.params.engine == "auto" and doctor.check("stress-ng").ok
        )
        if use_ng:
            doctor.require("stress-ng")
            argv = ["stress-ng", "--cpu", str(workers), "--cpu-load", str(self.params.load), "--quiet"]
        else:
            argv = python_argv(_BURNER, str(workers), str(self.params.load))
        dirs = target_cgroup_dirs(self.target, "cpu")
        self.state["hog"] = {"pending": True}
        self.checkpoint()
        self.state["hog"] = spawn(argv, cgroup_dirs=dirs, startup=0.2)
        self.checkpoint()

    def revert(self) -> None:
        hog = self.state.get("hog")
        if hog and "pid" in hog:
            stop(hog)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) or 1
