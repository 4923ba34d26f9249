"""The timeline: the baseline, then each planned fault injected at its offset, ticked when it acts
periodically, reverted when its duration ends (and every one still active when the run stops),
then the recovery.

A phase ends at a fixed time or on evidence (``baseline: {until: stable}``, ``recovery: {until:
steady}``: runner/evidence.py). Step offsets count from the run's start, or, when the experiment
has a ``baseline:``, from the baseline's end (``shift``), wherever the evidence put it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ChaoslabError, FaultError
from ..experiment.model import Experiment, StableBaseline, SteadyRecovery
from ..faults import Fault
from ..records import FaultAction, FaultRecord, record
from ..targets import ResolvedTarget, resolve
from . import actuate
from .control import Control
from .ledger import Ledger
from .plan import PlannedFault

if TYPE_CHECKING:  # built by the run only for phases that end on evidence (it imports the analysis)
    from .evidence import Evidence

#: How often a phase that ends on evidence looks at the records (a look reads only what is new).
LOOK_EVERY = 0.25


@dataclass
class ActiveFault:
    planned: PlannedFault
    fault: Fault[Any]
    entry: str | None
    injected_at: float
    next_tick: float | None
    end: float
    """When to revert: the planned end, moved on when the injection itself ended late."""


class Timeline:
    def __init__(self, control: Control, exp: Experiment, plan: list[PlannedFault], ledger: Ledger, *,
                 run_id: str, targets: dict[str, ResolvedTarget], stack_file: str | None,
                 evidence: Evidence | None = None) -> None:
        self.control = control
        self.evidence = evidence
        self.exp = exp
        self.plan = plan
        self.ledger = ledger
        self.run_id = run_id
        self.targets = targets
        self.stack_file = stack_file
        self.active: list[ActiveFault] = []
        self.t_inject: float | None = None
        self.t_revert: float | None = None
        self.errors: list[str] = []
        """Faults that could not be reverted (they stay in the ledger)."""
        self.shift = 0.0
        """Plan time step offsets count from: the baseline's end when the experiment has a ``baseline:``."""

    def now(self) -> float:
        """The method's time: what ``at`` and ``duration`` count on."""
        return self.control.plan_now() - self.shift

    async def sleep_until(self, t: float) -> bool:
        return await self.control.sleep_until(t + self.shift)

    async def run(self) -> None:
        """Until the last fault is reverted and the recovery has been watched (or an abort)."""
        c = self.control
        if not await self._baseline():
            return
        pending = list(self.plan)
        while pending or self.active:
            next_inject = pending[0].at if pending else float("inf")
            next_revert = min((a.end for a in self.active), default=float("inf"))
            next_tick = min((a.next_tick for a in self.active if a.next_tick is not None), default=float("inf"))
            if not await self.sleep_until(min(next_inject, next_revert, next_tick)):
                return
            now = self.now()
            for a in [a for a in self.active if a.end <= now]:
                await self.revert(a)
            for a in self.active:
                if a.next_tick is not None and a.next_tick <= now:
                    await self._tick(a)
            while pending and pending[0].at <= now:
                await self._inject(pending.pop(0))
                if c.aborted:
                    return
        self.recovery_starts()
        assert self.t_revert is not None
        if isinstance(self.exp.recovery, SteadyRecovery):
            await self._until_steady(self.exp.recovery)
        else:
            await c.sleep_until(self.t_revert - c.t_base + self.exp.recovery)

    async def _baseline(self) -> bool:
        """Wait out the baseline when the experiment sets one; False if the run was aborted."""
        spec, c = self.exp.baseline, self.control
        if spec is None:  # today's form: the baseline lasts until the first step's offset
            return True
        if not isinstance(spec, StableBaseline):
            self.shift = spec
            return await c.sleep_until(spec)
        ev = self.evidence
        assert ev is not None, "the run keeps an evidence view for a baseline that ends on evidence"
        why = "not looked at yet"
        while True:
            if not await c.sleep_until(min(c.plan_now() + LOOK_EVERY, spec.max)):
                return False
            elapsed = c.plan_now()
            ev.poll()
            unstable = ev.unstable()
            if elapsed >= spec.min and unstable is None:
                self._phase_end("baseline", "stable", elapsed, f"baseline: stable after {elapsed:.1f} s")
                break
            why = unstable or why
            if elapsed >= spec.max:
                self._phase_end("baseline", "max", elapsed,
                                f"baseline: max {spec.max:g} s reached, not stable ({why})")
                break
        self.shift = c.plan_now()
        return True

    async def _until_steady(self, spec: SteadyRecovery) -> None:
        """Observe the recovery until the evidence says it may end (Evidence.recovery_over), ``max``
        after the revert at most."""
        c, ev = self.control, self.evidence
        assert ev is not None and self.t_revert is not None
        t_revert = self.t_revert - c.t_base  # plan time
        hypothesis = {k: v.model_dump(exclude_none=True) for k, v in self.exp.hypothesis.items()}
        while not c.aborted:
            elapsed = c.plan_now() - t_revert
            if elapsed >= spec.max:
                self._phase_end("recovery", "max", elapsed, f"recovery: max {spec.max:g} s reached {ev.waiting}")
                return
            ev.poll()
            answer = ev.recovery_over(c.clock.now(), spec.min, hypothesis)
            if answer is not None:
                # from the recovery phase's mark, as the analysis measures it
                assert ev.t_revert is not None
                ttr = 0.0 if answer.recovered_at is None else max(0.0, answer.recovered_at - ev.t_revert)
                how = "no impact" if answer.recovered_at is None else f"time to recovery {ttr:.1f} s by the windows"
                self._phase_end("recovery", "steady", elapsed, f"recovery: steady after {elapsed:.1f} s ({how})",
                                time_to_recovery=round(ttr, 6))
                return
            await c.sleep_until(min(c.plan_now() + LOOK_EVERY, t_revert + spec.max))

    def _phase_end(self, phase: str, why: str, after: float, message: str, **extra: Any) -> None:
        """Why a phase ended on evidence, in the journal (docs/runs.md)."""
        c = self.control
        c.emit(record("event", c.clock.now(), source="runner", kind="phase_end", phase=phase, why=why,
                      after=round(after, 3), message=message, **extra))

    def recovery_starts(self) -> None:
        if self.t_revert is None:
            self.t_revert = self.control.clock.now()
            self.control.phase("recovery")

    async def revert_all(self) -> None:
        """Every path ends here: revert what is still active, newest first."""
        for a in reversed(list(self.active)):
            await self.revert(a)

    def _record(self, p: PlannedFault, fault: Fault[Any], action: FaultAction, **extra: Any) -> FaultRecord:
        rec: FaultRecord = {"type": "fault", "t": self.control.now(), "action": action, "step": p.step,
                            "fault": p.cls.name, "target": p.target, "describe": fault.describe()}
        rec.update(extra)  # type: ignore[typeddict-item]  # occurrence, state, error
        return rec

    async def _inject(self, p: PlannedFault) -> None:
        c = self.control
        target = None
        if p.target is not None:
            spec = self.exp.targets[p.target]
            target = await asyncio.to_thread(resolve, p.target, spec, stack_file=self.stack_file)
            self.targets[p.target] = target
        fault = p.cls(p.params, target, run_id=self.run_id)
        fault.planned_duration = p.duration
        now = self.now()
        active = ActiveFault(p, fault, None, now, now + fault.interval if fault.interval else None, p.end)
        if p.cls.reversible or p.duration:
            self.active.append(active)  # before injecting: a failed injection is reverted too
        if self.t_inject is None:
            self.t_inject = c.clock.now()
            c.phase("fault")

        def keep(entry: str | None) -> None:
            active.entry = entry

        try:
            await asyncio.to_thread(actuate.inject, fault, self.ledger, keep)
        except (ChaoslabError, OSError) as exc:
            c.emit(self._record(p, fault, "error", error=str(exc)))
            raise FaultError(f"could not inject {fault.describe()}: {exc}") from None
        c.emit(self._record(p, fault, "inject", occurrence=p.occurrence, state=fault.state))
        if p.duration:
            # A fault holds for its whole duration from the moment it is in place. On a busy
            # machine (or behind a slow step) the injection can end near or past the planned
            # end, and reverting then left a 500 ms pause lasting 50 ms or nothing at all.
            active.end = max(p.end, self.now() + p.duration)

    async def _tick(self, a: ActiveFault) -> None:
        try:
            acted = await asyncio.to_thread(a.fault.tick)
            if acted is not False:
                self.control.emit(self._record(a.planned, a.fault, "tick"))
        except (ChaoslabError, OSError) as exc:
            self.control.emit(self._record(a.planned, a.fault, "error", error=str(exc)))
        assert a.fault.interval is not None and a.next_tick is not None
        a.next_tick += a.fault.interval

    async def revert(self, a: ActiveFault) -> bool:
        c = self.control
        self.active.remove(a)
        p = a.planned
        ok = True
        if p.cls.reversible:
            try:
                await asyncio.to_thread(actuate.revert, a.fault, self.ledger, a.entry)
            except Exception as exc:
                ok = False
                msg = f"could not revert {a.fault.describe()}: {exc}; it stays in the ledger, see `chaoslab recover`"
                self.errors.append(msg)
                c.emit(self._record(p, a.fault, "error", error=msg))
        c.emit(self._record(p, a.fault, "revert" if p.cls.reversible else "end", occurrence=p.occurrence))
        more_planned = any(q.at > self.now() for q in self.plan) and not c.aborted
        if not self.active and self.t_inject is not None and not more_planned:
            self.recovery_starts()
        return ok
