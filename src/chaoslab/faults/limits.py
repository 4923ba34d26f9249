"""Process-count and resource-limit faults: ``pids.limit`` (cgroup pids.max) and
``process.rlimit`` (prlimit(2) on a running process, e.g. RLIMIT_NOFILE)."""

from __future__ import annotations

import resource
from typing import Any, Literal

from pydantic import Field, model_validator

from .. import capabilities
from ..cgroups import Group
from ..errors import FaultError
from ..targets import ProcessRef
from ..units import MAX_COUNT, PID_MAX_LIMIT
from . import register
from ._cgroupfault import CgroupFault
from .base import Fault, FaultParams


class PidsParams(FaultParams):
    max: int = Field(ge=1, le=PID_MAX_LIMIT, description="Tasks (processes and threads) the target may have; forks beyond fail.")


@register
class PidsLimit(CgroupFault[PidsParams]):
    name = "pids.limit"
    summary = "Cap the target's number of tasks (cgroup pids.max): fork and thread creation fail."
    Params = PidsParams
    controller = "pids"

    def apply(self, group: Group) -> None:
        group.set_pids_max(self.params.max)

    def read(self, group: Group) -> Any:
        return group.pids_max()

    def restore(self, group: Group, old: Any) -> None:
        group.set_pids_max(None if old is None else int(old))


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


@register
class ProcessRlimit(Fault[RlimitParams]):
    """Limits of a running process, changed from outside with prlimit(2). The process sees the
    new limit on its next call that checks it (``open`` beyond nofile fails with EMFILE)."""

    name = "process.rlimit"
    summary = "Lower a resource limit (e.g. open files) of the running target processes."
    Params = RlimitParams
    target_kinds = frozenset({"pid", "process", "service"})

    @classmethod
    def check(cls) -> None:
        capabilities.require("prlimit")

    def inject(self) -> None:
        if self.target is None:
            raise FaultError(f"{self.name} needs a target")
        res = RESOURCES[self.params.resource]
        refs = [r for r in self.target.processes if r.alive()]
        if not refs:
            raise FaultError(f"{self.name}: {self.target.describe()} has no live process to act on")
        old: list[dict[str, Any]] = []
        for ref in refs:
            try:
                soft, hard = resource.prlimit(ref.pid, res)
            except (ProcessLookupError, PermissionError):
                continue
            old.append({"pid": ref.pid, "create_time": ref.create_time, "soft": soft, "hard": hard})
        self.state["old"] = old
        self.checkpoint()
        for entry in old:
            hard = self.params.hard if self.params.hard is not None else entry["hard"]
            soft = self.params.soft if hard == resource.RLIM_INFINITY else min(self.params.soft, hard)
            try:
                resource.prlimit(entry["pid"], res, (soft, hard))
            except ProcessLookupError:
                continue
            except (OSError, ValueError) as exc:
                raise FaultError(f"{self.name}: cannot set {self.params.resource} of pid {entry['pid']}: {exc}") from None

    def revert(self) -> None:
        res = RESOURCES[self.params.resource]
        for entry in self.state.get("old") or []:
            ref = ProcessRef(int(entry["pid"]), float(entry["create_time"]))
            if not ref.alive():
                continue  # died or restarted: a new process starts with its own limits
            try:
                resource.prlimit(ref.pid, res, (int(entry["soft"]), int(entry["hard"])))
            except (ProcessLookupError, OSError, ValueError):
                continue
