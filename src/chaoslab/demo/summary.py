"""The demo's closing summary, as the seeds' experiment summaries read: per step the verdict, key
findings, what Prometheus and eBPF showed, the flamegraphs, recommendations and the report."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis.flamegraphs import flamegraph_findings
from ..journal import read_journal
from ..report.markdown import recommendations
from ..runner.verdict import RunResult
from ..units import format_duration


@dataclass
class Outcome:
    """What one step of the demo left: a verdict and a report, or a profile, or why not."""

    title: str
    lines: list[str] = field(default_factory=list)
    report: Path | None = None
    exit_code: int | None = None
    outcome: str = ""
    valid: bool = True
    """False when the run measured but could not judge (its load generator fell behind)."""


def _dur(v: float | None) -> str:
    return "n/a" if v is None else format_duration(v)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f}%"


def probe_means(run_dir: Path, probes: list[str]) -> dict[str, dict[str, float]]:
    """Mean value of each probe's samples per phase, from the journal (what Prometheus answered)."""
    records = read_journal(run_dir)
    starts = sorted((float(r["t"]), str(r["name"])) for r in records if r["type"] == "phase")
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["type"] != "sample" or r["probe"] not in probes or r["value"] is None:
            continue
        phase = next((name for t, name in reversed(starts) if t <= float(r["t"])), None)
        if phase in ("baseline", "fault", "recovery"):
            values[str(r["probe"])][phase].append(float(r["value"]))
    return {p: {ph: math.fsum(v) / len(v) for ph, v in per.items() if v} for p, per in values.items()}


def experiment_outcome(title: str, result: RunResult, prom: dict[str, str]) -> Outcome:
    """``prom``: probe name -> how to show its value ("orders/s", "s")."""
    out = Outcome(title, exit_code=result.exit_code, outcome=result.outcome)
    a = result.analysis
    if result.run_dir is not None:
        out.report = Path(result.run_dir) / "report.html"
    if a is None:
        out.lines.append(f"No verdict: {result.reason or 'the run did not finish'}.")
        return out
    m = a.metrics
    out.valid = a.valid
    if not out.valid and a.held is not False:
        out.lines.append(f"No verdict: the run is INVALID (exit {result.exit_code}): {a.validity.invalid_reason}; "
                         "the figures below are what was measured.")
    else:
        held = "held" if a.held else "was VIOLATED"
        out.lines.append(f"The hypothesis {held} ({result.outcome.upper()}, exit {result.exit_code}).")
    for v in a.judgement.assertions:
        if not v.passed:
            out.lines.append(f"  failed: {v.name} = {v.value} (bound {v.bound})")
    out.lines.append(
        f"Detection {_dur(m.get('detection_time'))}, recovery {_dur(m.get('time_to_recovery'))}; "
        f"errors {_pct(m.get('error_rate.baseline'))} in baseline, {_pct(m.get('error_rate.fault'))} under the fault; "
        f"p99 {_dur(m.get('latency.p99.baseline'))} -> {_dur(m.get('latency.p99.fault'))}.")
    loss = a.data_loss
    if loss.status == "checked":
        out.lines.append(f"Data: {loss.acknowledged} orders acknowledged, {len(loss.lost)} lost, "
                         f"{len(loss.duplicates)} stored twice.")
    if prom and result.run_dir is not None:
        means = probe_means(Path(result.run_dir), list(prom))
        for probe, unit in prom.items():
            per = means.get(probe)
            if per:
                shown = ", ".join(f"{ph} {per[ph]:.3g} {unit}" for ph in ("baseline", "fault", "recovery") if ph in per)
                out.lines.append(f"Prometheus {probe}: {shown}.")
            else:
                out.lines.append(f"Prometheus {probe}: no answer (is the stack's Prometheus up?).")
    ebpf = a.ebpf.findings if a.ebpf is not None else []
    skipped = [f for f in a.findings if f.startswith("eBPF tracing was skipped")]
    for line in ebpf or skipped or ["eBPF: nothing recorded."]:
        out.lines.append(f"eBPF: {line}" if not line.startswith("eBPF") else line)
    out.lines += flamegraph_findings(a.flamegraphs)
    out.lines += [f"Recommendation: {r}" for r in recommendations(a)]
    return out


def render(outcomes: list[Outcome], seconds: float, platform: str) -> list[str]:
    lines = [f"DEMO SUMMARY ({platform}, {seconds / 60:.1f} min)", ""]
    for i, o in enumerate(outcomes, 1):
        lines.append(f"{i}. {o.title}")
        lines += [f"   - {ln}" if not ln.startswith("  ") else f"     {ln.strip()}" for ln in o.lines]
        if o.report is not None:
            lines.append(f"   report: {o.report}")
        lines.append("")
    return lines
