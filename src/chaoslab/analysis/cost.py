"""What watching cost: chaoslab's own CPU per phase, per operation, and its start-up.

Every CPU second chaoslab spends during the phases (probes, load, bookkeeping) is taken from the
machine the system under test runs on. Phase records carry the runner process's CPU time
(``cpu``); the difference between two marks is what that phase cost. Observers that run as
their own processes (bpftrace, py-spy) are not counted here: docs/observability.md has theirs.
"""

from __future__ import annotations

from typing import Any

from ..experiment.names import PHASES
from ..records import PhaseRecord, Record, RunRecord


def metrics(journal: list[Record], operations: dict[str, int], first_op: float | None) -> dict[str, float | None]:
    """``chaoslab_cpu[.phase]`` (s), ``chaoslab_cpu_share[.phase]`` (of one core),
    ``chaoslab_cpu_per_op[.phase]`` (s) and ``chaoslab_startup`` (s); see docs/metrics.md."""
    marks: list[PhaseRecord] = [r for r in journal if r["type"] == "phase" and "cpu" in r]
    out: dict[str, float | None] = {}
    total_cpu = total_span = 0.0
    total_ops = 0
    for i, mark in enumerate(marks[:-1]):
        name = mark["name"]
        if name not in PHASES:
            continue
        nxt = marks[i + 1]
        cpu = max(0.0, nxt["cpu"] - mark["cpu"])
        span = float(nxt["t"]) - float(mark["t"])
        n = operations.get(name, 0)
        out[f"chaoslab_cpu.{name}"] = cpu
        out[f"chaoslab_cpu_share.{name}"] = cpu / span if span > 0 else None
        out[f"chaoslab_cpu_per_op.{name}"] = cpu / n if n else None
        total_cpu, total_span, total_ops = total_cpu + cpu, total_span + span, total_ops + n
    if total_span > 0:
        out["chaoslab_cpu"] = total_cpu
        out["chaoslab_cpu_share"] = total_cpu / total_span
        out["chaoslab_cpu_per_op"] = total_cpu / total_ops if total_ops else None
    out["chaoslab_startup"] = _startup(journal, first_op)
    return out


def _startup(journal: list[Record], first_op: float | None) -> float | None:
    """From the runner process's start to its first measurement (a probe sample or an operation sent)."""
    run: RunRecord | None = next((r for r in journal if r["type"] == "run"), None)
    if run is None or "process_started_at" not in run:
        return None
    firsts = [float(r["t"]) for r in journal if r["type"] == "sample"][:1]
    if first_op is not None:
        firsts.append(first_op)
    if not firsts:
        return None
    return max(0.0, run["started_at"] + min(firsts) - run["process_started_at"])


def summary(m: dict[str, Any]) -> str | None:
    """One line for the findings: what watching cost, or None when the run did not record it."""
    cpu = m.get("chaoslab_cpu")
    if cpu is None:
        return None
    line = f"Watching cost {cpu:.2f} s of CPU during the phases ({m['chaoslab_cpu_share'] * 100:.1f}% of one core"
    per_op = m.get("chaoslab_cpu_per_op")
    if per_op is not None:
        line += f", {per_op * 1e6:.0f} µs per operation"
    line += ")"
    if m.get("chaoslab_startup") is not None:
        line += f"; start-up to the first baseline sample took {m['chaoslab_startup']:.2f} s"
    return line + "."
