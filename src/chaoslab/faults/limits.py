"""Process-count and resource-limit faults: ``pids.limit`` (cgroup pids.max) and
``process.rlimit`` (prlimit(2) on a running process, e.g. RLIMIT_NOFILE)."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..errors import FaultError
from ..system import capabilities
from ..system.cgroups import Group
from ..targets import ProcessRef
from ..targets.base import RLIMITS
from ..units import MAX_COUNT, PID_MAX_LIMIT
from . import register
from ._cgroupfault import CgroupFault, CgroupFiles
from .base import Fault, FaultParams
from .settings import HeldSettings, Setting, SettingGone


class PidsParams(FaultParams):
    max: int = Field(ge=1, le=PID_MAX_LIMIT, description="Tasks (processes and threads) the target may have; forks beyond fail.")


@register
class PidsLimit(CgroupFault[PidsParams]):
    name = "pids.limit"
    summary = "Cap the target's number of tasks (cgroup pids.max): fork and thread creation fail."
    controller = "pids"

    def setting(self, group: Group) -> Setting:
        d, _ = group.directory("pids")
        return CgroupFiles(d, ("pids.max",))

    def value(self, group: Group) -> Any:
        return [str(self.params.max)]


RESOURCES: dict[str, int] = {
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "as": resource.RLIMIT_AS,
    "core": resource.RLIMIT_CORE,
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "memlock": resource.RLIMIT_MEMLOCK,
    "stack": resource.RLIMIT_STACK,
}


class RlimitParams(FaultParams):
    resource: Literal["nofile", "nproc", "as", "core", "cpu", "fsize", "memlock", "stack"] = "nofile"
    soft: int = Field(ge=0, le=MAX_COUNT, description="New soft limit.")
    hard: int | None = Field(None, ge=0, le=MAX_COUNT, description="New hard limit (default: unchanged).")

    @model_validator(mode="after")
    def _order(self) -> RlimitParams:
        if self.hard is not None and self.soft > self.hard:
            raise ValueError(f"soft ({self.soft}) must not exceed hard ({self.hard})")
        return self


class Rlimit(Setting):
    """One resource limit (soft, hard) of one process (pid + start time: a reused pid is another)."""

    def __init__(self, pid: int, create_time: float, name: str) -> None:
        self.ref = ProcessRef(int(pid), float(create_time))
        self.name = name

    @property
    def key(self) -> str:
        return f"rlimit:{self.ref.pid}:{self.ref.create_time}:{self.name}"

    def read(self) -> Any:
        if not self.ref.alive():
            raise SettingGone(f"pid {self.ref.pid}")
        try:
            return list(resource.prlimit(self.ref.pid, RESOURCES[self.name]))
        except ProcessLookupError:
            raise SettingGone(f"pid {self.ref.pid}") from None

    def write(self, value: Any) -> None:
        if not self.ref.alive():
            raise SettingGone(f"pid {self.ref.pid}")  # a restarted process starts with its own limits
        try:
            resource.prlimit(self.ref.pid, RESOURCES[self.name], (int(value[0]), int(value[1])))
        except ProcessLookupError:
            raise SettingGone(f"pid {self.ref.pid}") from None


@register
class ProcessRlimit(Fault[RlimitParams]):
    """Limits of a running process, changed from outside with prlimit(2). The process sees the
    new limit on its next call that checks it (``open`` beyond nofile fails with EMFILE). Each
    (process, resource) is a shared setting: overlapping faults stack, the newest in force."""

    name = "process.rlimit"
    summary = "Lower a resource limit (e.g. open files) of the running target processes."
    needs = frozenset({RLIMITS})

    @classmethod
    def check(cls) -> None:
        capabilities.require("prlimit")

    def _wanted(self, before: Any) -> list[int]:
        """The limits this fault puts in force, given the ones in force before it."""
        hard = self.params.hard if self.params.hard is not None else int(before[1])
        soft = self.params.soft if hard == resource.RLIM_INFINITY else min(self.params.soft, hard)
        return [soft, hard]

    def inject(self) -> None:
        if self.target is None:
            raise FaultError(f"{self.name} needs a target")
        refs = [r for r in self.target.processes if r.alive()]
        if not refs:
            raise FaultError(f"{self.name}: {self.target.describe()} has no live process to act on")
        self._refuse_irreversible(refs)
        self.state["procs"] = [{"pid": r.pid, "create_time": r.create_time} for r in refs]
        held = HeldSettings(self.state, self.run_id)
        self.checkpoint()
        try:
            for r in refs:
                try:
                    held.hold(Rlimit(r.pid, r.create_time, self.params.resource), self._wanted)
                except SettingGone:
                    continue
                except (OSError, ValueError) as exc:
                    raise FaultError(f"{self.name}: cannot set {self.params.resource} of pid {r.pid}: {exc}") from None
        except BaseException:
            self.revert()
            raise

    def _refuse_irreversible(self, refs: list[ProcessRef]) -> None:
        """A hard limit lowered without CAP_SYS_RESOURCE can never be raised back: refuse before
        anything changes rather than leave it for a revert that must fail."""
        if self.params.hard is None or _has_sys_resource():
            return
        for r in refs:
            try:
                _soft, hard = resource.prlimit(r.pid, RESOURCES[self.params.resource])
            except ProcessLookupError:
                continue
            if hard == resource.RLIM_INFINITY or self.params.hard < hard:
                raise FaultError(
                    f"{self.name}: lowering the hard {self.params.resource} limit of pid {r.pid} "
                    f"({'unlimited' if hard == resource.RLIM_INFINITY else hard} -> {self.params.hard}) could "
                    "not be undone: raising it back needs CAP_SYS_RESOURCE, which this runner lacks "
                    "(leave hard unset to lower the soft limit only)"
                )

    def revert(self) -> None:
        if "owners" not in self.state:
            return
        held = HeldSettings(self.state, self.run_id)
        for entry in self.state.get("procs") or []:
            held.release(Rlimit(int(entry["pid"]), float(entry["create_time"]), self.params.resource))


def _has_sys_resource() -> bool:
    """Whether this process has CAP_SYS_RESOURCE in its effective set (root in a container may not)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False
