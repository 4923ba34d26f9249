"""Process probe: alive (and not stopped) — by target name or command-line pattern.

A target that follows restarts (a stack service, a command-line pattern) is looked up again when
its process is gone: the service its supervisor brought back is alive under a new pid, and the
probe watches that one from then on (a probe that kept the first pid would call a restarted
service dead for the rest of the run)."""

from __future__ import annotations

import psutil
from pydantic import Field, model_validator

from ..targets import ResolvedTarget, find_processes
from ..targets.base import FOLLOWS_RESTARTS
from . import register
from .base import NoExpect, Probe, ProbeModel, Sample, Stopwatch


class ProcessProbeSpec(ProbeModel):
    target: str | None = Field(None, description="A target name; alive when all its processes are.")
    pattern: str | None = Field(None, description="Alive when a process command line matches.")

    @model_validator(mode="after")
    def _one(self) -> ProcessProbeSpec:
        if (self.target is None) == (self.pattern is None):
            raise ValueError("a process probe needs exactly one of target, pattern")
        return self


@register
class ProcessProbe(Probe[ProcessProbeSpec, NoExpect]):
    kind = "process"
    _followed: ResolvedTarget | None = None  # the target looked up again after a restart (ours only:
                                             # the run's resolved targets stay as faults saw them)

    async def sample(self) -> Sample:
        watch = Stopwatch()
        if self.spec.pattern is not None:
            pids = find_processes(self.spec.pattern)
            ok = bool(pids)
            return Sample(ok, len(pids), watch.elapsed(), None if ok else f"no process matches {self.spec.pattern!r}")
        name = self.spec.target or ""  # the spec has a target: it has no pattern
        target = self._followed or self.context.targets.get(name)
        if target is None:
            return Sample(False, None, watch.elapsed(), f"target {name!r} is not resolved")
        bad = _unwell(target)
        if bad is not None and target.can(FOLLOWS_RESTARTS):
            try:
                fresh = target.refresh()
            except Exception:  # between restarts: the service is not back yet
                fresh = None
            if fresh is not None and fresh.processes and fresh.processes != target.processes:
                self._followed = target = fresh  # the restarted service, from now on
                bad = _unwell(target)
        if bad is not None:
            return Sample(False, bad[0], watch.elapsed(), bad[1])
        return Sample(True, len(target.processes), watch.elapsed())


def _unwell(target: ResolvedTarget) -> tuple[int, str] | None:
    """(pid, why) of the first of the target's processes that is gone or stopped, else None."""
    for ref in target.processes:
        proc = ref.process()
        try:
            status = proc.status() if proc is not None else None
        except psutil.NoSuchProcess:
            status = None
        if status is None:
            return ref.pid, f"pid {ref.pid} exited"
        if status in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return ref.pid, f"pid {ref.pid} is {status}"
    return None
