"""The Markdown report: summary, findings, recommendations, hypothesis and phase tables."""

from __future__ import annotations

from ..analysis.hypothesis import bound_text
from ..analysis.model import Analysis
from ..experiment.names import PHASES, format_value

_PHASE_ROWS = ("availability", "error_rate", "timeout_rate", "throughput", "latency.p50", "latency.p95", "latency.p99", "latency.max")


def recommendations(a: Analysis) -> list[str]:
    """What to do next, derived from what the findings show."""
    m = a.metrics
    recs: list[str] = []
    if not a.valid:
        recs.append("Re-run on a quieter machine or at a lower rate: the generator could not keep up.")
    if a.phases.t_inject is not None and m.get("detection_time") is None:
        recs.append("Add a health check or alert that fails while this fault is active; nothing signalled it.")
    if a.impacted and m.get("time_to_recovery") is None:
        recs.append("Investigate why the system stays degraded after the fault is gone (restart policy, reconnect logic, caches).")
    elif (m.get("time_to_recovery") or 0) > 10:
        recs.append("Recovery took longer than 10 s: check reconnect back-off and health-check intervals.")
    loss = a.data_loss
    if loss.lost:
        recs.append("Acknowledged writes were lost: acknowledge only after the write is durable (fsync/commit, replication).")
    if loss.resurrected:
        recs.append("Writes reported as failed were applied: make failure responses truthful or writes idempotent.")
    if loss.duplicates:
        recs.append("A write was stored twice: add an idempotency key to the write path.")
    if loss.status == "unknown":
        recs.append("Make the final read succeed (check the verify step) so data loss can be judged.")
    if (m.get("timeout_rate.fault") or 0) > 0.05:
        recs.append("Many requests timed out under the fault: fail fast (timeouts, circuit breakers) instead of hanging.")
    return recs


def render(a: Analysis) -> str:
    m = a.metrics
    lines = [f"# {a.title or 'chaoslab run'}", ""]
    if a.description:
        lines += [str(a.description).strip(), ""]
    score = m.get("resilience_score")
    lines += [
        f"**Verdict: {a.verdict_word}**" + (f" — resilience score {score:g}/100" if score is not None else ""),
        "",
        f"Run directory: `{a.run_dir}`",
        "",
        "## Key findings",
        "",
    ]
    lines += [f"- {f}" for f in a.findings] or ["- Nothing notable."]
    recs = recommendations(a)
    if recs:
        lines += ["", "## Recommendations", ""] + [f"- {r}" for r in recs]
    if a.judgement.assertions:
        lines += ["", "## Hypothesis", "", "| assertion | measured | bound | result |", "|---|---|---|---|"]
        for v in a.judgement.assertions:
            shown = format_value(v.name, v.value) if v.value is not None else f"n/a ({v.note})"
            lines.append(f"| `{v.name}` | {shown} | {bound_text(v.name, v.bound)} | {'pass' if v.passed else '**FAIL**'} |")
    ph = a.phases
    lines += ["", "## Timeline", ""]
    lines.append(
        f"Baseline 0 s to {_t(ph.t_inject)}, fault {_t(ph.t_inject)} to {_t(ph.t_revert)}, "
        f"recovery {_t(ph.t_revert)} to {_t(ph.t_end)}."
    )
    for f in a.faults:
        lines.append(f"- `{f['fault']}` on {f.get('target') or '-'}: {f['start']:.2f} s to {f['end']:.2f} s. {f.get('describe') or ''}".rstrip())
    if m.get("operations"):
        lines += ["", "## Load per phase", "", "| metric | " + " | ".join(PHASES) + " | whole run |", "|---" * 5 + "|"]
        for row in _PHASE_ROWS:
            cells = [format_value(row, m.get(f"{row}.{p}")) for p in PHASES] + [format_value(row, m.get(row))]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    if a.probes:
        lines += ["", "## Probes", "", "| probe | " + " | ".join(PHASES) + " |", "|---" * 4 + "|"]
        for name in a.probes:
            cells = [format_value("availability", m.get(f"probe.{name}.availability.{p}")) for p in PHASES]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    loss = a.data_loss
    lines += ["", "## Data loss", "", f"Status: **{loss.status.replace('_', ' ').upper()}**" + (f" — {loss.reason}" if loss.reason else "")]
    if loss.status == "checked":
        lines.append(
            f"\nAcknowledged {loss.acknowledged}, attempted {loss.attempted}, read back {loss.final}: "
            f"lost {len(loss.lost)}, unexpected {len(loss.unexpected)}, recovered after timeout "
            f"{len(loss.recovered_from_timeout)}, resurrected {len(loss.resurrected)}, duplicates {len(loss.duplicates)}."
        )
    if a.flamegraphs:
        lines += ["", "## CPU flamegraphs", ""]
        lines += [f"- [{fg.get('phase')} phase]({fg.get('path')})" for fg in a.flamegraphs]
    ebpf_lines = a.ebpf.findings if a.ebpf is not None else []
    if ebpf_lines:
        lines += ["", "## Kernel view (eBPF)", ""] + [f"- {f}" for f in ebpf_lines]
    if a.stack_events:
        lines += ["", "## Stack events", "", "| t | service | event | what |", "|---|---|---|---|"]
        lines += [f"| {ev['t']:.2f} s | {ev.get('service')} | {ev.get('kind')} | {ev.get('message', '')} |"
                  for ev in a.stack_events]
    if a.container_events:
        lines += ["", "## Container events (Docker)", "", "| t | container | event | detail |", "|---|---|---|---|"]
        lines += [f"| {ev['t']:.2f} s | {ev.get('container')} | {ev.get('kind')} | "
                  f"{ev.get('status') or ev.get('exit_code', '') or ev.get('signal', '')} |"
                  for ev in a.container_events]
    if a.kubernetes_events:
        lines += ["", "## Kubernetes events", "", "| t | object | event | count | message |", "|---|---|---|---|---|"]
        lines += [f"| {ev['t']:.2f} s | {ev.get('object')} | {ev.get('kind')} | {ev.get('count', '')} | "
                  f"{str(ev.get('message', '')).replace('|', '/')} |"
                  for ev in a.kubernetes_events]
    return "\n".join(lines) + "\n"


def _t(v: float | None) -> str:
    return "?" if v is None else f"{v:.2f} s"
