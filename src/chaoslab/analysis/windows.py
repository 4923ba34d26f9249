"""1 s windows, the steady-state tolerance, impact onset and time to recovery (GUIDE §4).

Windows are keyed by ``t_scheduled`` of the load's operations. A run without load builds its
windows from probe samples instead (keyed by sample time, success = probe ok), so recovery
can be measured on a system that is only probed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..records import SampleRecord
from .latency import nearest_rank

#: Consecutive good windows that make a recovery.
RECOVERED_AFTER = 3
#: A window may lose this much availability against the baseline and still be good.
AVAILABILITY_SLACK = 0.02
#: Tolerances used when the baseline gives nothing to learn from.
DEFAULT_AVAILABILITY = 0.97


@dataclass
class Window:
    start: float
    n: int = 0
    ok: int = 0
    fail: int = 0
    timeout: int = 0
    unsent: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    good: bool | None = None  # None: empty window, neither good nor bad
    span: float = 1.0  # the last window is cut by the end of the run
    _sorted: bool = field(default=False, repr=False)

    @property
    def availability(self) -> float | None:
        return self.ok / self.n if self.n else None

    def pct(self, p: float) -> float | None:
        """Exact percentile of the window's latencies (few values: no histogram needed)."""
        if not self._sorted:
            self.latencies.sort()
            self._sorted = True
        return nearest_rank(self.latencies, p)

    def add(self, op: dict[str, Any]) -> None:
        """Count one operation of the load's history."""
        self.n += 1
        outcome = op.get("outcome")
        if outcome == "ok":
            self.ok += 1
            if op.get("latency") is not None:
                self.latencies.append(float(op["latency"]))
                self._sorted = False
        elif outcome == "timeout":
            self.timeout += 1
        elif op.get("t_sent") is None:
            self.unsent += 1
        else:
            self.fail += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.start,
            "n": self.n,
            "ok": self.ok,
            "fail": self.fail,
            "timeout": self.timeout,
            "unsent": self.unsent,
            "span": self.span,
            "throughput": self.ok / self.span if self.span > 0 else None,
            "rate": self.n / self.span if self.span > 0 else None,
            "error_rate": (1 - self.ok / self.n) if self.n else None,
            "p50": self.pct(50),
            "p99": self.pct(99),
            "good": self.good,
        }


@dataclass(frozen=True)
class Tolerance:
    min_availability: float
    max_p99: float | None  # None: latency is not judged (no baseline latency to learn from)

    def to_dict(self) -> dict[str, Any]:
        return {"min_availability": self.min_availability, "max_p99": self.max_p99}


def op_windows(ops: list[dict[str, Any]], t_end: float) -> list[Window]:
    """Windows over the load history; operations cut short by the end of the run are left out."""
    wins = _empty(t_end)
    for op in ops:
        if op.get("cut"):
            continue
        w = _at(wins, float(op["t_scheduled"]))
        if w is not None:
            w.add(op)
    return wins


def sample_windows(samples: list[SampleRecord], t_end: float) -> list[Window]:
    wins = _empty(t_end)
    for s in samples:
        w = _at(wins, float(s["t"]))
        if w is None:
            continue
        w.n += 1
        if s.get("ok"):
            w.ok += 1
        else:
            w.fail += 1
    return wins


def _empty(t_end: float) -> list[Window]:
    wins = [Window(float(k)) for k in range(max(1, math.ceil(t_end)))]
    wins[-1].span = max(0.0, min(1.0, t_end - wins[-1].start)) if t_end > 0 else 1.0
    return wins


def _at(wins: list[Window], t: float) -> Window | None:
    k = math.floor(t)
    if k < 0:
        return None
    while k >= len(wins):  # records after the last phase mark (partial journals)
        wins[-1].span = 1.0
        wins.append(Window(float(len(wins))))
    return wins[k]


def learn_tolerance(baseline_availability: float | None, baseline_p99: float | None) -> Tolerance:
    """The steady state a window must match to be good, learnt from the baseline phase."""
    if baseline_availability is None:
        avail = DEFAULT_AVAILABILITY
    else:
        avail = max(0.0, min(0.99, baseline_availability) - AVAILABILITY_SLACK)
    p99 = None if baseline_p99 is None else max(3 * baseline_p99, baseline_p99 + 0.05)
    return Tolerance(avail, p99)


def judge(wins: list[Window], tol: Tolerance) -> None:
    for w in wins:
        if not w.n:
            w.good = None
            continue
        good = (w.ok / w.n) >= tol.min_availability
        if good and tol.max_p99 is not None and w.latencies:
            good = (w.pct(99) or 0.0) <= tol.max_p99
        w.good = good


@dataclass(frozen=True)
class Recovery:
    impact_onset: float | None  # start of the first bad window at or after t_inject
    recovered_at: float | None  # start of the first run of N good windows after the impact
    impacted: bool
    recovered: bool


def recovery(wins: list[Window], t_inject: float, n_good: int = RECOVERED_AFTER,
             t_revert: float | None = None) -> Recovery:
    """Impact onset and the start of the recovery; empty windows neither count nor break a run.

    A bad window only counts as this fault's impact until the system has shown ``n_good`` good
    windows in a row after the revert: a blip long after a harmless fault is a separate incident,
    not an impact whose "recovery" would be measured from it."""
    first = math.floor(t_inject)
    onset_idx = None
    steady = 0
    for i in range(first, len(wins)):
        g = wins[i].good
        if g is False:
            onset_idx = i
            break
        if g and t_revert is not None and wins[i].start >= t_revert:
            steady += 1
            if steady >= n_good:
                break
    if onset_idx is None:
        return Recovery(None, None, impacted=False, recovered=True)
    run_start: int | None = None
    count = 0
    for i in range(onset_idx + 1, len(wins)):
        g = wins[i].good
        if g is None:
            continue
        if g:
            if count == 0:
                run_start = i
            count += 1
            if count >= n_good:
                return Recovery(wins[onset_idx].start, wins[run_start].start, True, True)  # type: ignore[index]
        else:
            count = 0
    return Recovery(wins[onset_idx].start, None, impacted=True, recovered=False)


def settled_recovery(wins: list[Window], t_inject: float, t_revert: float,
                     n_good: int = RECOVERED_AFTER) -> Recovery | None:
    """``recovery()`` on the first windows of a run still being recorded, once no later window can
    change its answer; None while it could. The rule reads the windows in order and stops at its
    answer, so the answer is final when it is an impact followed by ``n_good`` good windows, or
    ``n_good`` good windows after the revert with no bad one since the injection. ``wins`` must
    hold only complete windows (every operation or sample due in them recorded)."""
    rec = recovery(wins, t_inject, n_good, t_revert)
    if rec.impacted:
        return rec if rec.recovered else None
    steady = sum(1 for w in wins[math.floor(t_inject):] if w.good and w.start >= t_revert)
    return rec if steady >= n_good else None
