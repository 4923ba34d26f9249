"""Latency percentiles from an HDR histogram (1 µs .. 1 h, 3 significant digits)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_DIGITS = 3


def histogram(seconds: Iterable[float]) -> HdrHistogram:
    h = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
    for s in seconds:
        add(h, s)
    return h


def add(h: HdrHistogram, seconds: float) -> None:
    """One latency into a histogram, as ``histogram`` records it (for histograms kept growing)."""
    h.record_value(min(_HIGHEST_US, max(_LOWEST_US, round(seconds * 1e6))))


def p99(h: HdrHistogram) -> float | None:
    """The p99 ``percentiles`` gives for the same values; None when there is none."""
    if h.get_total_count() == 0:
        return None
    return float(h.get_percentile_to_value_dict([99])[99]) / 1e6


def percentiles(seconds: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in seconds; all None when there is no value."""
    h = histogram(seconds)
    if h.get_total_count() == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    at = h.get_percentile_to_value_dict([50, 95, 99])  # one pass over the counts
    return {
        "p50": at[50] / 1e6,
        "p95": at[95] / 1e6,
        "p99": at[99] / 1e6,
        "max": h.get_max_value() / 1e6,
    }


def nearest_rank(sorted_values: list[float], pct: float) -> float | None:
    """Exact percentile of a small sorted sample (a 1 s window), nearest-rank definition."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]
