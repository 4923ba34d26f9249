"""Impact onset and recovery to the operation, not to the second (docs/metrics.md).

The window rule (windows.py) decides *whether* the system recovered: three good 1 s windows on
the run's grid of whole seconds. Its answer is only as fine as the grid: a recovery 0.1 s and one
0.9 s into a second give the same figure. Here the same rule is applied with the grid anchored
at an individual operation (or probe sample): the exact recovery instant is the first good
operation from which the next three 1 s spans each meet the steady state, and the exact impact
onset is the first bad operation from which the next span does not. Spans are judged as the
windows are (availability, and the nearest-rank p99 of the successful operations), so the two
figures share one definition of "steady"; only the anchor differs.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from ..records import SampleRecord
from .windows import RECOVERED_AFTER, Recovery, Tolerance

#: The width of a span (one window).
WIDTH = 1.0


@dataclass(frozen=True)
class Point:
    """One operation or probe sample: when it was due, and whether it met the steady state."""

    t: float
    ok: bool
    slow: bool = False  # succeeded, but slower than the steady state's p99 bound

    @property
    def good(self) -> bool:
        return self.ok and not self.slow


def op_points(ops: list[dict[str, Any]], tol: Tolerance) -> list[Point]:
    out = []
    for op in ops:
        if op.get("cut"):
            continue
        ok = op.get("outcome") == "ok"
        latency = op.get("latency")
        slow = ok and tol.max_p99 is not None and latency is not None and float(latency) > tol.max_p99
        out.append(Point(float(op["t_scheduled"]), ok, slow))
    out.sort(key=lambda p: p.t)
    return out


def sample_points(samples: list[SampleRecord]) -> list[Point]:
    return sorted((Point(float(s["t"]), bool(s.get("ok"))) for s in samples), key=lambda p: p.t)


class _Spans:
    """Prefix counts over the points, so any span is judged in O(log n)."""

    def __init__(self, points: list[Point], tol: Tolerance) -> None:
        self.points = points
        self.tol = tol
        self.t = [p.t for p in points]
        self.ok = [0]
        self.slow = [0]
        for p in points:
            self.ok.append(self.ok[-1] + p.ok)
            self.slow.append(self.slow[-1] + p.slow)

    def holds(self, a: float, b: float) -> bool | None:
        """Whether the points due in [a, b) meet the steady state; None when there are none."""
        i, j = bisect.bisect_left(self.t, a), bisect.bisect_left(self.t, b)
        n = j - i
        if n == 0:
            return None
        ok = self.ok[j] - self.ok[i]
        if ok / n < self.tol.min_availability:
            return False
        if self.tol.max_p99 is not None and ok:
            # nearest-rank p99 <= bound  <=>  at least ceil(0.99 * ok) latencies are within it
            return self.slow[j] - self.slow[i] <= ok - math.ceil(0.99 * ok)
        return True

    def steady_from(self, a: float, t_end: float, n_good: int) -> bool:
        """``n_good`` good spans in a row from ``a`` (empty spans neither count nor break)."""
        good = 0
        while good < n_good and a < t_end:
            held = self.holds(a, min(a + WIDTH, t_end))
            if held is False:
                return False
            good += held is True
            a += WIDTH
        return good >= n_good


@dataclass(frozen=True)
class Instants:
    impact_onset: float | None  # the first bad operation/sample of the impact (run time)
    recovered_at: float | None  # the first operation/sample from which the steady state holds


def exact(points: list[Point], tol: Tolerance, t_inject: float, rec: Recovery, t_end: float,
          n_good: int = RECOVERED_AFTER) -> Instants:
    """The window rule's impact and recovery, located to the operation.

    Only called when the window rule saw an impact. The exact instants are looked for within a
    window or two of the rule's: the rule decides that there was an impact and a recovery, this
    says when, to the operation.
    """
    if rec.impact_onset is None:
        return Instants(None, None)
    spans = _Spans(points, tol)
    t = spans.t
    onset = rec.impact_onset
    lo = max(t_inject, rec.impact_onset - WIDTH)
    for k in range(bisect.bisect_left(t, lo), bisect.bisect_left(t, rec.impact_onset + WIDTH)):
        p = points[k]
        if not p.good and spans.holds(p.t, p.t + WIDTH) is False:
            onset = p.t
            break
    if rec.recovered_at is None:
        return Instants(onset, None)
    # Candidates: the first good point after a bad one (a recovery starts right after the last
    # failure), and the first point of the search range.
    lo = max(onset, rec.recovered_at - 2 * WIDTH)
    first = bisect.bisect_left(t, lo)
    for k in range(first, bisect.bisect_left(t, rec.recovered_at + WIDTH)):
        p = points[k]
        if not p.good or (k > first and points[k - 1].good):
            continue
        if spans.steady_from(p.t, t_end, n_good):
            return Instants(onset, p.t)
    return Instants(onset, rec.recovered_at)
