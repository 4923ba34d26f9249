"""eBPF findings about *when* and *how long*, beside the per-phase counts of ``findings.py``.

``retransmit_timing``: when the retransmits on a target's port started and stopped, relative to
the injection and the revert ("started 1 s after the injection, stopped 2 s after the revert").
``sched_wait_by_phase``: the scheduler's run-queue wait per phase, of the targets' own threads
when the tracer knew them (``sched_wait_target``), else of the whole machine.

Both read only journal records, at the 1 s resolution of the tracer's windows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ..records import Record, events

PHASES = ("baseline", "fault", "recovery")


def _ebpf(records: list[Record], kind: str) -> list[dict[str, Any]]:
    return [r for r in events(records, "ebpf") if r.get("kind") == kind]


def _phase_times(records: list[Record]) -> dict[str, float]:
    return {r["name"]: float(r["t"]) for r in records if r["type"] == "phase"}


def _when(window: float, t: float, what: str) -> str:
    """Where the 1 s window starting at ``window`` lies relative to the instant ``t``."""
    if window <= t < window + 1.0:
        return f"in the same second as the {what}"
    delta = window - t if window > t else window + 1.0 - t
    return f"{abs(delta):.0f} s {'after' if delta > 0 else 'before'} the {what}"


def retransmit_timing(records: list[Record], focus: set[int], min_count: int = 3) -> list[str]:
    """One sentence per focused port with at least ``min_count`` retransmits from the injection on."""
    phases = _phase_times(records)
    t_inject, t_revert = phases.get("fault"), phases.get("recovery")
    if t_inject is None:
        return []
    seconds: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for rec in _ebpf(records, "retransmits"):
        port = int(rec.get("port", 0))
        if (not focus or port in focus) and float(rec["t"]) + 1.0 > t_inject:
            seconds[port].append((float(rec["t"]), int(rec.get("count", 0))))
    end = phases.get("verify", phases.get("end"))
    out = []
    for port, hits in sorted(seconds.items()):
        total = sum(n for _, n in hits)
        if total < min_count:
            continue
        first, last = min(t for t, _ in hits), max(t for t, _ in hits)
        text = f"TCP retransmits on port {port}: {total} from the injection on, the first {_when(first, t_inject, 'injection')}"
        if t_revert is None or (end is not None and last + 1.0 >= end):
            text += ", still going when the run ended."
        else:
            text += f", the last {_when(last, t_revert, 'revert')} (to the second)."
        out.append(text)
    return out


def _ms(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us < 10_000 else f"{us / 1000:.0f} ms"


def sched_wait_by_phase(records: list[Record], phase_of: Callable[[float], str | None]) -> list[str]:
    """The average and worst run-queue wait in each phase (``phase_of`` a window's start), in one
    sentence."""
    kind, whose = "sched_wait_target", "the target's threads"
    recs = _ebpf(records, kind)
    if not recs:
        kind, whose = "sched_wait", "every task on the machine"
        recs = _ebpf(records, kind)
    if not recs:
        return []
    n: dict[str, int] = defaultdict(int)
    total: dict[str, float] = defaultdict(float)
    worst: dict[str, int] = defaultdict(int)
    for rec in recs:
        phase = phase_of(float(rec["t"]))
        if phase is None:
            continue
        count = int(rec.get("count", 0))
        n[phase] += count
        total[phase] += float(rec.get("avg_us", 0.0)) * count
        worst[phase] = max(worst[phase], int(rec.get("max_us", 0)))
    parts = [f"{_ms(total[p] / n[p])} on average (worst {_ms(worst[p])}) {'in' if p == 'baseline' else 'during the'} {p}"
             for p in PHASES if n.get(p)]
    if not parts:
        return []
    sentence = f"Run-queue wait of {whose} (eBPF, sched_switch): " + ", ".join(parts) + "."
    if n.get("baseline") and n.get("fault"):
        base, fault = total["baseline"] / n["baseline"], total["fault"] / n["fault"]
        if base > 0 and fault >= 2 * base:
            sentence += f" The fault made it {fault / base:.0f}x longer."
    return [sentence]


# The states that tell a connection's story: attempts, answers, successes, closes unanswered, ends.
_STATES = ("SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSE")


def tcp_states_by_phase(records: list[Record], focus: set[int], bounds: dict[str, tuple[float, float]],
                        phase_of: Callable[[float], str | None]) -> list[str]:
    """Per focused port, how many sockets entered each telling state in each phase."""
    counts: dict[int, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for rec in _ebpf(records, "tcp_state"):
        port = rec.get("port")
        if port is None or int(port) not in focus or rec.get("state") not in _STATES:
            continue
        phase = phase_of(float(rec["t"]))
        if phase is not None:
            counts[int(port)][phase][str(rec["state"])] += int(rec.get("count", 0))
    out = []
    for port, per in sorted(counts.items()):
        parts = []
        for phase in PHASES:
            if phase not in bounds:
                continue
            lo, hi = bounds[phase]
            states = ", ".join(f"{per[phase][s]} {s}" for s in _STATES if per[phase].get(s)) or "none"
            parts.append(f"{phase} ({hi - lo:.0f} s): {states}")
        out.append(f"TCP connection states on port {port} (eBPF, inet_sock_set_state): " + "; ".join(parts) + ".")
    return out
