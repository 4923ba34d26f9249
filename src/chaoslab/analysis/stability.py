"""When a baseline has taught all it will: its steady-state figures have stopped moving.

The rule behind ``baseline: {until: stable}`` (docs/metrics.md, "Stable baseline"). The
analysis learns its steady state (windows.learn_tolerance) from the whole baseline's
availability and p99; a baseline is stable once the figures of its last windows agree with
the whole baseline's, so a longer baseline would teach the same tolerance.
"""

from __future__ import annotations

from .latency import nearest_rank
from .windows import Window, judge, learn_tolerance

#: The last windows compared with the whole baseline.
STABLE_WINDOWS = 5
#: Operations (load) or probe samples (no load) the whole baseline must hold.
MIN_OPERATIONS = 100
MIN_SAMPLES = 20
#: How far the last windows' pooled availability may be from the whole baseline's.
AVAILABILITY_DRIFT = 0.01
#: How far their pooled p99 may be from the whole baseline's: this share of it, or the floor.
P99_DRIFT = 0.25
P99_FLOOR = 0.002


def unstable(last: list[Window], n: int, ok: int, p99: float | None, basis: str) -> str | None:
    """Why the baseline is not stable yet, or None when it is.

    ``last``: its last ``STABLE_WINDOWS`` complete windows; ``n``, ``ok``, ``p99``: the whole
    baseline's operations (or samples), successes and p99 latency (None without load)."""
    least = MIN_OPERATIONS if basis == "load" else MIN_SAMPLES
    what = "operations" if basis == "load" else "probe samples"
    if n < least:
        return f"{n} {what} (needs {least})"
    if len(last) < STABLE_WINDOWS or any(w.n == 0 for w in last):
        return f"fewer than {STABLE_WINDOWS} complete windows with {what}"
    whole = ok / n
    tol = learn_tolerance(whole, p99)
    judge(last, tol)
    bad = [w for w in last if not w.good]
    if bad:
        return f"window at {bad[0].start:g}s is outside the steady state learnt so far"
    pooled_n = sum(w.n for w in last)
    pooled = sum(w.ok for w in last) / pooled_n
    if abs(pooled - whole) > AVAILABILITY_DRIFT:
        return f"availability of the last {STABLE_WINDOWS} windows {pooled:.4f} vs {whole:.4f}"
    if p99 is not None:
        latencies = sorted(x for w in last for x in w.latencies)
        recent = nearest_rank(latencies, 99)
        if recent is not None and abs(recent - p99) > max(P99_DRIFT * p99, P99_FLOOR):
            return f"p99 of the last {STABLE_WINDOWS} windows {recent * 1000:.1f} ms vs {p99 * 1000:.1f} ms"
    return None
