"""eBPF counts of a run in plain words and per-second series, for the analysis and the report.

Reads only journal records (``event``/``source: ebpf``), so old runs re-render the same:
``ebpf_findings(records)`` -> ["14 TCP retransmits on port 5432 during the fault (0 in baseline, ...)."]
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..records import Record, events
from .ebpftiming import retransmit_timing, sched_wait_by_phase, tcp_states_by_phase

PHASES = ("baseline", "fault", "recovery")


def _phase_bounds(records: list[Record]) -> dict[str, tuple[float, float]]:
    starts: dict[str, float] = {r["name"]: float(r["t"]) for r in records if r["type"] == "phase"}
    end = starts.get("end", starts.get("verify", max((float(r["t"]) for r in records), default=0.0) + 1))
    t_inject = starts.get("fault")
    t_revert = starts.get("recovery", end)
    if t_inject is None:
        return {"baseline": (starts.get("baseline", 0.0), end)}
    return {"baseline": (starts.get("baseline", 0.0), t_inject), "fault": (t_inject, t_revert),
            "recovery": (t_revert, end)}


def _phase_of(t: float, bounds: dict[str, tuple[float, float]]) -> str | None:
    # A 1 s window [t, t+1) that overlaps the fault at all is the fault's: a fault's kernel effects
    # start with it (a second holding the injection must not make the baseline look noisy), and
    # an instant fault (kill) has a window of zero length. Other windows go to the phase holding
    # most of them.
    if "fault" in bounds:
        lo, hi = bounds["fault"]
        if t <= hi and t + 1.0 > lo:
            return "fault"
    mid = t + 0.5
    for name, (lo, hi) in bounds.items():
        if lo <= mid < hi:
            return name
    return None


def _focus(records: list[Record]) -> set[int]:
    """The targets' ports, as the tracer recorded them when it started (empty: no focus)."""
    for rec in events(records, "ebpf"):
        if rec.get("action") == "started":
            return {int(p) for p in rec.get("ports") or []}
    return set()


def _key(rec: dict[str, Any]) -> tuple[str, str] | None:
    kind = rec.get("kind")
    if kind == "retransmits":
        return "retransmits", f"TCP retransmits on port {rec.get('port')}"
    if kind == "resets":
        verb = "sent by" if rec.get("direction") == "sent" else "received from"
        return "resets", f"TCP resets {verb} port {rec.get('port')}"
    if kind == "oom_kills":
        return "oom_kills", f"OOM kill of {rec.get('comm')} (pid {rec.get('pid')})"
    return None


def phase_counts(records: list[Record], focus: set[int] | None = None) -> dict[str, dict[str, int]]:
    """{"TCP retransmits on port 5432": {"baseline": 0, "fault": 14, "recovery": 2}, ...};
    with ``focus``, only the counts of those ports (and every OOM kill)."""
    bounds = _phase_bounds(records)
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(PHASES, 0))
    for rec in events(records, "ebpf"):
        if focus and "port" in rec and rec["port"] not in focus:
            continue
        key = _key(rec)
        phase = _phase_of(float(rec.get("t", 0.0)), bounds)
        if key is not None and phase is not None:
            out[key[1]][phase] += int(rec.get("count", 0))
    return dict(out)


def ebpf_findings(records: list[Record], top: int = 5, min_count: int = 3, min_rise: float = 2.0) -> list[str]:
    """Sentences for the findings: every OOM kill, and the counts whose rate during the fault is
    at least ``min_rise`` times the baseline's (the tracer sees the whole machine, so steady
    background traffic must not read as an effect of the fault). When the targets have ports,
    only what happened on those ports is told."""
    counts = phase_counts(records, _focus(records))
    bounds = _phase_bounds(records)
    seconds = {p: max(hi - lo, 1.0) for p, (lo, hi) in bounds.items()}
    lines: list[tuple[float, str]] = []
    for what, per in counts.items():
        if what.startswith("OOM"):
            total = sum(per.values())
            when = ", ".join(f"{n} during the {p}" if p != "baseline" else f"{n} in baseline"
                             for p, n in per.items() if n)
            what = what if total == 1 else what.replace("OOM kill", "OOM kills", 1)
            lines.append((float("inf"), f"{total} {what}: {when}."))
            continue
        if "fault" not in seconds or per["fault"] < min_count:
            continue
        rate_fault = per["fault"] / seconds["fault"]
        rate_base = per["baseline"] / seconds["baseline"]
        if rate_fault >= min_rise * rate_base:
            lines.append((per["fault"], f"{per['fault']} {what} during the fault "
                                        f"({per['baseline']} in baseline, {per['recovery']} in recovery)."))
    # When and how long come first: they say more than one more count.
    timed = retransmit_timing(records, _focus(records), min_count)
    timed += tcp_states_by_phase(records, _focus(records), bounds, lambda t: _phase_of(t, bounds))
    timed += sched_wait_by_phase(records, lambda t: _phase_of(t, bounds))
    for r in records:
        if r["type"] == "observer" and r["observer"] == "EbpfTracer" and r["action"] == "skipped":
            lines.append((-1.0, f"eBPF tracing was skipped: {r['reason']}."))
    return timed + [text for _, text in sorted(lines, key=lambda x: -x[0])[:top]]


def ebpf_series(records: list[Record]) -> dict[str, list[tuple[float, float]]]:
    """Per-second series for charts: one per counted kind (summed over keys), plus the
    scheduler's average run-queue wait in microseconds (of the targets' threads too, when known)."""
    sums: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for rec in events(records, "ebpf"):
        kind = str(rec.get("kind"))
        t = float(rec.get("t", 0.0))
        if kind in ("sched_wait", "sched_wait_target"):
            sums[f"{kind}_avg_us"][t] = float(rec.get("avg_us", 0.0))
        elif kind == "tcp_state":
            sums[f"tcp_state_{str(rec.get('state')).lower()}"][t] += float(rec.get("count", 0))
        elif "count" in rec and kind != "tracer":
            sums[kind][t] += float(rec["count"])
    return {k: sorted(v.items()) for k, v in sorted(sums.items())}


@dataclass(frozen=True)
class EbpfView:
    """What the eBPF tracer recorded, as the analysis tells it."""

    findings: list[str]
    series: dict[str, list[tuple[float, float]]]
    by_phase: dict[str, dict[str, int]]

    def to_dict(self) -> dict[str, Any]:
        return {"findings": self.findings, "series": self.series, "by_phase": self.by_phase}


def ebpf_view(records: list[Record]) -> EbpfView | None:
    """None when the run has no eBPF record."""
    if not events(records, "ebpf"):
        return None
    return EbpfView(ebpf_findings(records), ebpf_series(records), phase_counts(records))
