"""The self-contained HTML report: inline CSS and SVG only, so it opens offline from any disk."""

from __future__ import annotations

from html import escape

from ..analysis.hypothesis import bound_text
from ..analysis.model import Analysis
from ..experiment.names import PHASES, format_value
from . import charts
from .markdown import recommendations

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:960px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #eee;padding-bottom:.2em}
.badge{display:inline-block;padding:.25em .7em;border-radius:4px;color:#fff;font-weight:600}
.HELD{background:#2e9d4b}.VIOLATED{background:#d43d3d}.INVALID{background:#b36b00}.NOTHING{background:#777}
table{border-collapse:collapse;width:100%;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
th{background:#f6f6f6}td.pass{color:#2e9d4b;font-weight:600}td.fail{color:#d43d3d;font-weight:600}
.ct{font:600 13px system-ui,sans-serif}.ax{font:11px system-ui,sans-serif;fill:#555}.lg{font:12px system-ui,sans-serif}
.muted{color:#777}code{background:#f4f4f4;padding:0 .2em}
.kpis{display:flex;gap:.8em;flex-wrap:wrap;margin:1em 0}.kpi{border:1px solid #ddd;border-radius:6px;padding:.5em .9em;min-width:9em}
.kpi b{display:block;font-size:1.35em}.kpi span{color:#666;font-size:.85em}
"""

#: The headline numbers, in the order a reader asks for them.
_KPIS = (
    ("detection_time", "detection"),
    ("time_to_recovery", "time to recovery"),
    ("time_to_recovery.exact", "recovery, to the operation"),
    ("availability.fault", "availability under fault"),
    ("latency.p99.fault", "p99 under fault"),
    ("lost_writes", "lost writes"),
)


def _ms(v: float) -> str:
    return f"{v * 1000:.3g} ms" if v < 1 else f"{v:.3g} s"


def _charts(a: Analysis) -> list[str]:
    wins = [w.to_dict() for w in a.steady.windows]
    t_end = a.phases.t_end
    faults = [(f["start"], f["end"]) for f in a.faults]
    out: list[str] = []
    if a.metrics.get("operations"):
        # a sliver of a window at the very end (the load stopping) says nothing about rates
        mid = [(w["t"] + 0.5, w) for w in wins if w.get("span", 1.0) >= 0.5]
        out.append(charts.line_chart(
            "Throughput (successful operations per second)",
            [
                charts.Series("ok/s", "#2f6fb3", [(t, w.get("throughput") if w["n"] else None) for t, w in mid]),
                charts.Series("scheduled/s", "#aaa", [(t, w.get("rate") if w["n"] else None) for t, w in mid]),
            ],
            t_end, faults, lambda v: f"{v:.0f}",
        ))
        out.append(charts.line_chart(
            "Error rate (failures, timeouts and unsent, per window)",
            [
                charts.Series("error rate", "#d43d3d", [(t, w["error_rate"]) for t, w in mid]),
                charts.Series("timeouts", "#b36b00", [(t, w["timeout"] / w["n"] if w["n"] else None) for t, w in mid]),
            ],
            t_end, faults, lambda v: f"{v * 100:.0f}%", y_max=1.0,
        ))
        out.append(charts.line_chart(
            "Latency of successful operations (from due time)",
            [
                charts.Series("p50", "#2f6fb3", [(t, w["p50"]) for t, w in mid]),
                charts.Series("p99", "#8e44ad", [(t, w["p99"]) for t, w in mid]),
            ],
            t_end, faults, _ms,
        ))
    if a.probes:
        out.append(charts.lanes(a.probes, t_end, faults))
    series = a.ebpf.series if a.ebpf is not None else {}
    palette = ("#2f6fb3", "#d43d3d", "#b36b00", "#8e44ad", "#1e8449", "#555")
    counted = [(k, v) for k, v in series.items() if not k.endswith("_avg_us")]
    if counted:
        out.append(charts.line_chart(
            "Kernel events per second (eBPF)",
            [charts.Series(k, palette[i % len(palette)], [(t + 0.5, c) for t, c in v]) for i, (k, v) in enumerate(counted)],
            t_end, faults, lambda v: f"{v:.0f}",
        ))
    waits = [(label, key) for label, key in (("whole machine", "sched_wait_avg_us"), ("target", "sched_wait_target_avg_us"))
             if key in series]
    if waits:
        out.append(charts.line_chart(
            "Scheduler run-queue wait, average (eBPF)",
            [charts.Series(label, ("#8e44ad", "#d43d3d")[i], [(t + 0.5, us / 1e6) for t, us in series[key]])
             for i, (label, key) in enumerate(waits)],
            t_end, faults, _ms,
        ))
    return out


def _kpis(a: Analysis) -> str:
    tiles = []
    m = a.metrics
    for key, label in _KPIS:
        value = m.get(key)
        if key == "availability.fault" and value is None:  # no load: what the probes saw
            probe_avail = [m.get(f"probe.{p}.availability.fault") for p in a.probes]
            known = [v for v in probe_avail if v is not None]
            if known:
                value, label = sum(known) / len(known), "probe availability under fault"
        if value is None:
            why = a.missing.get(key, "n/a")
            shown = "undetected" if why == "undetected" else "UNKNOWN" if "UNKNOWN" in why else "n/a"
            if "NOT CHECKED" in why:
                shown = "not checked"
            if key == "time_to_recovery" and why.startswith("not recovered"):
                shown = "never"
        else:
            shown = format_value(key, value)
        tiles.append(f"<div class=kpi><b>{escape(shown)}</b><span>{label}</span></div>")
    return "<div class=kpis>" + "".join(tiles) + "</div>"


def render(a: Analysis) -> str:
    m = a.metrics
    verdict = a.verdict_word
    score = m.get("resilience_score")
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(str(a.title or 'chaoslab run'))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(str(a.title or 'chaoslab run'))}</h1>",
        f"<p><span class='badge {verdict.split()[0]}'>{verdict}</span>"
        + (f" &nbsp;resilience score <b>{score:g}</b>/100" if score is not None else "")
        + f" &nbsp;<span class=muted>{escape(str(a.run_dir))}</span></p>",
    ]
    if a.description:
        parts.append(f"<p>{escape(str(a.description))}</p>")
    parts.append(_kpis(a))
    parts.append("<h2>Key findings</h2><ul>" + "".join(f"<li>{escape(f)}</li>" for f in a.findings) + "</ul>")
    recs = recommendations(a)
    if recs:
        parts.append("<h2>Recommendations</h2><ul>" + "".join(f"<li>{escape(r)}</li>" for r in recs) + "</ul>")
    if a.judgement.assertions:
        rows = "".join(
            f"<tr><td><code>{escape(v.name)}</code></td>"
            f"<td>{escape(format_value(v.name, v.value) if v.value is not None else 'n/a (' + str(v.note) + ')')}</td>"
            f"<td>{escape(bound_text(v.name, v.bound))}</td>"
            f"<td class={'pass' if v.passed else 'fail'}>{'pass' if v.passed else 'FAIL'}</td></tr>"
            for v in a.judgement.assertions
        )
        parts.append("<h2>Hypothesis</h2><table><tr><th>assertion</th><th>measured</th><th>bound</th><th>result</th></tr>" + rows + "</table>")
    parts.append("<h2>Timeline</h2>" + "".join(_charts(a)))
    keyed = "each operation's due time" if m.get("operations") else "each probe sample's time"
    parts.append(f"<p class=muted>Shaded: fault active. Windows are 1 s, keyed by {keyed}.</p>")
    if m.get("operations"):
        head = "".join(f"<th>{p}</th>" for p in PHASES)
        rows = ""
        for row in ("availability", "error_rate", "timeout_rate", "throughput", "latency.p50", "latency.p95", "latency.p99", "latency.max"):
            rows += f"<tr><td>{row}</td>" + "".join(f"<td>{escape(format_value(row, m.get(f'{row}.{p}')))}</td>" for p in PHASES) + "</tr>"
        parts.append(f"<h2>Per phase</h2><table><tr><th>metric</th>{head}</tr>{rows}</table>")
    loss = a.data_loss.to_dict()
    parts.append(f"<h2>Data loss</h2><p>Status: <b>{escape(loss['status'].replace('_', ' ').upper())}</b>"
                 + (f" — {escape(str(loss['reason']))}" if loss["reason"] else "") + "</p>")
    if loss["status"] == "checked":
        rows = "".join(
            f"<tr><td>{label}</td><td>{len(loss[key])}</td><td>{escape(', '.join(loss[key][:20]))}{' …' if len(loss[key]) > 20 else ''}</td></tr>"
            for key, label in (("lost", "lost (acknowledged, missing)"), ("unexpected", "unexpected (never attempted)"),
                               ("recovered_from_timeout", "applied after timeout (allowed)"),
                               ("resurrected", "applied after explicit failure"), ("duplicates", "duplicates"))
        )
        parts.append(f"<p>Acknowledged {loss['acknowledged']}, attempted {loss['attempted']}, read back {loss['final']}.</p>"
                     f"<table><tr><th>class</th><th>count</th><th>ids</th></tr>{rows}</table>")
    if a.flamegraphs:
        items = "".join(
            f"<li><a href='{escape(str(fg.get('path')))}'>{escape(str(fg.get('phase')))} phase</a>"
            + (" — " + escape(", ".join(f"{h['function']} {h['share']:.0%}" for h in fg.get("hot", [])[:3])) if fg.get("hot") else "")
            + "</li>"
            for fg in a.flamegraphs
        )
        # Each phase's flamegraph drawn inline too (py-spy's SVG beside the report), so the
        # report shows where the time went without a click; the link opens the zoomable one.
        pictures = "".join(
            f"<figure><figcaption>{escape(str(fg.get('phase')))} phase</figcaption>"
            f"<img src='{escape(str(fg.get('path')))}' alt='flamegraph of the {escape(str(fg.get('phase')))} phase' "
            "style='width:100%;border:1px solid #ddd'></figure>"
            for fg in a.flamegraphs
        )
        parts.append(f"<h2>CPU flamegraphs</h2><ul>{items}</ul>{pictures}")
    if a.ebpf is not None and a.ebpf.findings:
        parts.append("<h2>Kernel view (eBPF)</h2><ul>" + "".join(f"<li>{escape(f)}</li>" for f in a.ebpf.findings) + "</ul>"
                     "<p class=muted>bpftrace on tracepoints; charts in the timeline above.</p>")
    if a.stack_events:
        rows = "".join(
            f"<tr><td>{ev['t']:.2f} s</td><td>{escape(str(ev.get('service')))}</td><td>{escape(str(ev.get('kind')))}</td>"
            f"<td>{escape(str(ev.get('message', '')))}</td></tr>"
            for ev in a.stack_events
        )
        parts.append(f"<h2>Stack events</h2><table><tr><th>t</th><th>service</th><th>event</th><th>what</th></tr>{rows}</table>")
    parts.append("</body></html>\n")
    return "".join(parts)
