"""What the run has recorded so far, kept up to date as it grows, so a phase can end on evidence.

``baseline: {until: stable}`` and ``recovery: {until: steady}`` (docs/experiment-format.md) end a
phase when the analysis's own rules say so: the stability rule (analysis/stability.py) and the
recovery rule (analysis/windows.py: three good 1 s windows). The runner decides from what the
journal and the load history hold, the data ``chaoslab report`` will analyse, so the run's
verdict is the one the analysis gives: the journal's records reach this view as they are
emitted, and the history's new lines are read from where the last read stopped, never the whole
file again (the runner's CPU during the phases is the system's loss: analysis/cost.py).

A window is judged only once it is complete: every operation due in it has its line in the
history (the generator numbers operations in the order they fall due, so once operation k and
all before it are recorded, every window before operation k's is complete), or, without load,
every probe has a sample that started after it. A complete window never changes, so an answer
read from complete windows is the answer the analysis will read from the finished journal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..analysis import stability
from ..analysis.hypothesis import judge as judge_bound
from ..analysis.instants import WIDTH
from ..analysis.latency import add, histogram, p99
from ..analysis.phases import Phases
from ..analysis.rates import phase_metrics
from ..analysis.windows import (
    RECOVERED_AFTER,
    Recovery,
    Tolerance,
    Window,
    judge,
    learn_tolerance,
    settled_recovery,
)
from ..journal import Tail
from ..records import Record, SampleRecord


class Evidence:
    """The windows, the baseline's figures and the phase marks of the run so far."""

    def __init__(self, history: Path | None, probes: Iterable[str]) -> None:
        # the analysis builds its windows from the load when there is one, else from the probes
        self.basis = "load" if history is not None else "probes"
        self._tail = Tail(history) if history is not None else None
        self.wins: list[Window] = []
        self.complete_until = 0.0
        """Journal time before which every operation (or sample) has been recorded."""
        self.t_inject: float | None = None
        self.t_revert: float | None = None
        self._next_id = 0
        self._early: dict[int, float] = {}  # recorded ids above the first missing one: their due time
        self._last_sample = {name: -math.inf for name in probes}
        # the analysis's availability.baseline and latency.p99.baseline: everything due before t_inject
        self._base_n = 0
        self._base_ok = 0
        self._base_hist = histogram(())
        # the same over the complete windows only, for the stability rule while the baseline runs
        self._done = 0  # windows counted into the figures below
        self._stable_n = 0
        self._stable_ok = 0
        self._stable_hist = histogram(())
        self._unstable: str | None = "nothing recorded yet"
        self.tolerance: Tolerance | None = None
        self._judged = 0
        # what the recovery phase's own figures are computed from (only that phase: kept small)
        self._recovery_ops: list[dict[str, Any]] = []
        self._recovery_samples: list[SampleRecord] = []
        self._bounds_at = -1
        self._seen: float | None = None
        self.waiting = "without the steady state"
        """Why the recovery phase may not end yet (for the journal when max ends it)."""
        self._bounds_failing: list[str] = []

    # -- feeding -----------------------------------------------------------------------------
    def on_record(self, rec: Record) -> None:
        """Every journal record, as it is emitted."""
        if rec["type"] == "phase":
            if rec["name"] == "fault" and self.t_inject is None:
                self.t_inject = float(rec["t"])
            elif rec["name"] == "recovery" and self.t_revert is None:
                self.t_revert = float(rec["t"])
        elif rec["type"] == "sample" and self.basis == "probes":
            t = float(rec["t"])
            w = self._window(t)
            w.n += 1
            ok = bool(rec.get("ok"))
            w.ok += ok
            w.fail += not ok
            if self.t_inject is None or t < self.t_inject:
                self._base_n += 1
                self._base_ok += ok
            name = rec["probe"]
            self._last_sample[name] = max(self._last_sample.get(name, -math.inf), t)
            self.complete_until = max(self.complete_until, min(self._last_sample.values()))
        if rec["type"] == "sample" and self.t_revert is not None and float(rec["t"]) >= self.t_revert:
            self._recovery_samples.append(rec)

    def poll(self) -> None:
        """Take in the history's new lines."""
        if self._tail is not None:
            for op in self._tail.read():
                self.take(op)

    def take(self, op: dict[str, Any]) -> None:
        """One history line (an operation, or the header, which is skipped)."""
        if "t_scheduled" not in op or op.get("cut"):
            return
        t = float(op["t_scheduled"])
        if self.t_revert is not None and t >= self.t_revert:
            self._recovery_ops.append(op)
        self._window(t).add(op)
        ok = op.get("outcome") == "ok"
        latency = op.get("latency")
        # an operation due after t_inject is written after the fault's phase mark (one event
        # loop), so t_inject is known by the time such a line is read
        if self.t_inject is None or t < self.t_inject:
            self._base_n += 1
            if ok:
                self._base_ok += 1
                if latency is not None:
                    add(self._base_hist, float(latency))
        self._recorded(int(op["id"]), t)

    def _recorded(self, op_id: int, t: float) -> None:
        if op_id != self._next_id:
            self._early[op_id] = t
            return
        self._next_id += 1
        self.complete_until = max(self.complete_until, t)
        while self._next_id in self._early:
            self.complete_until = max(self.complete_until, self._early.pop(self._next_id))
            self._next_id += 1

    def _window(self, t: float) -> Window:
        k = max(0, math.floor(t))
        while k >= len(self.wins):
            self.wins.append(Window(float(len(self.wins))))
        return self.wins[k]

    @property
    def complete(self) -> int:
        """How many windows, from the first, are complete."""
        return min(len(self.wins), max(0, math.floor(self.complete_until)))

    # -- the rules -----------------------------------------------------------------------------
    def unstable(self) -> str | None:
        """Why the baseline recorded so far is not stable (analysis/stability.py); None once it is."""
        done = self.complete
        if done == self._done and self._done > 0:
            return self._unstable  # no window completed since the last look
        for w in self.wins[self._done:done]:
            self._stable_n += w.n
            self._stable_ok += w.ok
            for x in w.latencies:
                add(self._stable_hist, x)
        self._done = max(self._done, done)
        whole_p99 = p99(self._stable_hist) if self.basis == "load" else None
        last = [_copy(w) for w in self.wins[max(0, done - stability.STABLE_WINDOWS):done]]
        self._unstable = stability.unstable(last, self._stable_n, self._stable_ok, whole_p99, self.basis)
        return self._unstable

    def recovery(self) -> Recovery | None:
        """The recovery rule's answer once complete windows settle it; None until then."""
        if self.t_inject is None or self.t_revert is None or self.complete_until < self.t_inject:
            return None
        if self.tolerance is None:  # every operation due in the baseline is in: learn as the analysis does
            availability = self._base_ok / self._base_n if self._base_n else None
            self.tolerance = learn_tolerance(availability, p99(self._base_hist) if self.basis == "load" else None)
        done = self.complete
        if done > self._judged:
            judge(self.wins[self._judged:done], self.tolerance)
            self._judged = done
        return settled_recovery(self.wins[:done], self.t_inject, self.t_revert)

    def recovery_over(self, now: float, min_after: float, hypothesis: dict[str, dict[str, Any]]) -> Recovery | None:
        """The recovery rule's answer once a ``recovery: {until: steady}`` phase may end at journal
        time ``now``; None while it may not (``waiting`` says why). It may end when the rule has its
        answer from complete windows and the last three complete windows after the revert are
        good, ``min_after`` has passed since that was first seen, the analysis can locate the
        recovery exactly, and the hypothesis holds on the recovery phase's own figures."""
        answer = self.recovery()
        if answer is None:
            self.waiting = "without the steady state"
            return None
        if self._seen is None and self.steady_since_revert():
            self._seen = now
        if self._seen is None or now - self._seen < min_after or not self.located(answer):
            self.waiting = "without the steady state"
            return None
        # a figure of the recovery phase that fails now could still pass over a longer phase:
        # observe on (to max at most) rather than give a verdict the full run would not
        failing = self.recovery_bounds_failing(hypothesis, now)
        if failing:
            self.waiting = f"steady, but {', '.join(failing)} not met yet"
            return None
        return answer

    def steady_since_revert(self) -> bool:
        """Whether the last ``RECOVERED_AFTER`` complete windows with anything in them all start
        after the revert and are good: the steady state seen with the fault gone (the rule itself
        counts a recovery while the fault was still active as immediate). Call after ``recovery()``,
        which judges the complete windows."""
        if self.t_revert is None:
            return False
        after = [w for w in self.wins[:self._judged] if w.n and w.start >= self.t_revert][-RECOVERED_AFTER:]
        return len(after) == RECOVERED_AFTER and all(w.good for w in after)

    def recovery_bounds_failing(self, hypothesis: dict[str, dict[str, Any]], now: float) -> list[str]:
        """The hypothesis lines on a figure of the recovery phase (``*.recovery``) that do not hold
        on the phase recorded so far. Such a figure is a share or a percentile of the phase, so it
        depends on the phase's length: a phase that ends while one fails would give a verdict the
        longer phase might not. Only complete windows' operations and samples count."""
        names = [n for n in hypothesis if n.endswith(".recovery")]
        if not names or self.t_inject is None or self.t_revert is None:
            return []
        if self._bounds_at == self.complete:  # once per completed window, not every look
            return self._bounds_failing
        self._bounds_at = self.complete
        upto = min(self.complete_until, now)
        ops = [op for op in self._recovery_ops if float(op["t_scheduled"]) < upto]
        samples = [s for s in self._recovery_samples if float(s["t"]) < upto]
        phases = Phases(self.t_inject, self.t_revert, max(upto, self.t_revert), complete=True)
        metrics = phase_metrics(ops, samples, sorted(self._last_sample), phases, self.basis == "load")
        self._bounds_failing = [n for n in names if not judge_bound(n, metrics.get(n), hypothesis[n], None).passed]
        return self._bounds_failing

    def located(self, rec: Recovery) -> bool:
        """Whether the records reach far enough past the recovery for the analysis to locate it to
        the operation (analysis/instants.py looks up to a window past the rule's recovery, then
        three spans on)."""
        if rec.recovered_at is None:
            return True
        return self.complete_until >= rec.recovered_at + (RECOVERED_AFTER + 1) * WIDTH


def _copy(w: Window) -> Window:
    """A window to judge against a tolerance that may still change (judging marks it)."""
    return Window(w.start, n=w.n, ok=w.ok, fail=w.fail, timeout=w.timeout, unsent=w.unsent,
                  latencies=list(w.latencies))
