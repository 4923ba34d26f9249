"""Process probe: alive (and not stopped) — by target name or command-line pattern."""

from __future__ import annotations

import psutil
from pydantic import Field, model_validator

from ..targets import find_processes
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

    async def sample(self) -> Sample:
        watch = Stopwatch()
        if self.spec.pattern is not None:
            pids = find_processes(self.spec.pattern)
            ok = bool(pids)
            return Sample(ok, len(pids), watch.elapsed(), None if ok else f"no process matches {self.spec.pattern!r}")
        target = self.context.targets.get(self.spec.target or "")  # the spec has a target: it has no pattern
        if target is None:
            return Sample(False, None, watch.elapsed(), f"target {self.spec.target!r} is not resolved")
        for ref in target.processes:
            proc = ref.process()
            if proc is None:
                return Sample(False, ref.pid, watch.elapsed(), f"pid {ref.pid} exited")
            try:
                status = proc.status()
            except psutil.NoSuchProcess:
                return Sample(False, ref.pid, watch.elapsed(), f"pid {ref.pid} exited")
            if status in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return Sample(False, ref.pid, watch.elapsed(), f"pid {ref.pid} is {status}")
        return Sample(True, len(target.processes), watch.elapsed())
