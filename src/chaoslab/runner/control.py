"""What the run's parts share: its clock, its journal (``emit``) and its one abort.

The timeline and the watcher each hold this, never the run, so neither reaches into the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ExitCode
from ..journal import RunClock
from ..records import PhaseName, Record

Emit = Callable[[Record], None]


@dataclass
class Control:
    clock: RunClock
    emit: Emit
    t_base: float = 0.0
    """Journal time of the baseline's start: step offsets, recovery and max_duration count from it
    (observers such as bpftrace may take a second to start before it)."""
    abort_reason: str | None = None
    abort_code: ExitCode = ExitCode.ABORTED
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on abort: wakes the timeline out of its sleep."""
    worker_cpu: Callable[[], float] = lambda: 0.0
    """CPU seconds used so far by the run's own child workers (load workers), added to phase marks."""

    def now(self) -> float:
        """Journal time, as records carry it."""
        return round(self.clock.now(), 6)

    def plan_now(self) -> float:
        """Seconds since the baseline started: the axis of ``at``, ``duration`` and ``recovery``."""
        return self.clock.now() - self.t_base

    def phase(self, name: PhaseName) -> None:
        """Mark a phase, with the CPU the run and its load workers have used so far (docs/metrics.md,
        watching cost)."""
        cpu = time.process_time() + self.worker_cpu()
        self.emit({"type": "phase", "t": self.now(), "name": name, "cpu": round(cpu, 6)})

    @property
    def aborted(self) -> bool:
        return self.abort_reason is not None

    def abort(self, reason: str, code: ExitCode) -> None:
        """The first abort wins: its reason and exit code are the run's."""
        if self.abort_reason is None:
            self.abort_reason = reason
            self.abort_code = code
            self.emit({"type": "abort", "t": self.now(), "reason": reason, "exit_code": int(code)})
        self.wake.set()

    async def sleep_until(self, t: float) -> bool:
        """Sleep until plan time ``t``; False if the run was aborted meanwhile."""
        delay = t - self.plan_now()
        if self.aborted:
            return False
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)
        return not self.aborted
