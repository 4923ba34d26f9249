"""The console's HTML, rendered on the server (escaped f-strings like report/html.py, no template
engine). Live parts are small scripts in static/console.js that read data-* attributes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from .catalog import Entry
from .index import RunRow
from .machine import FRESH, Checked
from .trend import FIGURES, Comparison

OUTCOMES = ("held", "violated", "aborted", "error", "invalid", "running")


def _e(v: Any) -> str:
    return escape(str(v))


def layout(title: str, body: str, *, csrf: str, read_only: bool, nav: str = "") -> str:
    links = "".join(
        f"<a href='{href}'{' class=on' if nav == key else ''}>{label}</a>"
        for key, href, label in (("runs", "/runs", "Runs"), ("catalog", "/catalog", "Catalog"),
                                 ("machine", "/machine", "This machine"))
    )
    banner = "<div class=ro>read-only console: actions are off</div>" if read_only else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<meta name=csrf content='{_e(csrf)}'><title>{_e(title)} · chaoslab</title>"
        "<link rel=stylesheet href='/static/console.css'><script src='/static/console.js' defer></script>"
        f"</head><body><header><b>chaoslab</b><nav>{links}</nav></header>{banner}<main>{body}</main></body></html>"
    )


def post_form(action: str, label: str, csrf: str, confirm: str, *, extra: str = "", cls: str = "danger",
              ident: str = "") -> str:
    return (f"<form method=post action='{_e(action)}' data-confirm='{_e(confirm)}' class=inline>"
            f"<input type=hidden name=csrf value='{_e(csrf)}'>{extra}"
            f"<button type=submit class='{cls}'{f' id={ident}' if ident else ''}>{_e(label)}</button></form>")


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _secs(v: float | None) -> str:
    return "-" if v is None else (f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s")


def figure(column: str, v: float | None) -> str:
    if v is None:
        return "-"
    unit = FIGURES[column][1]
    if unit == "s":
        return _secs(v)
    if unit == "ratio":
        return f"{v * 100:.1f}%"
    return f"{v:g}"


def badge(outcome: str | None, phase: str) -> str:
    text = outcome or phase
    return f"<span class='badge {_e(outcome or 'running')}'>{_e(text)}</span>"


def run_row(r: RunRow) -> str:
    return (
        f"<tr data-run='{_e(r.run_id)}' data-started='{r.started_at or 0}' class='{'live' if r.running else ''}'>"
        f"<td><a href='/runs/{quote(r.run_id)}'>{_e(r.title)}</a><br><small>{_e(r.run_id)}</small></td>"
        f"<td>{_e(r.platform)}</td><td>{_when(r.started_at)}</td><td data-k=duration>{_secs(r.duration)}</td>"
        f"<td data-k=phase>{badge(r.outcome, r.phase)}</td>"
        f"<td>{figure('detection', r.detection)}</td><td>{figure('ttr', r.ttr)}</td><td>{figure('lost', r.lost)}</td>"
        f"<td><a href='/experiment?{urlencode({'title': r.title})}'>trend</a></td></tr>"
    )


def runs_page(rows: list[RunRow], titles: list[str], q: dict[str, str], server_ms: float, *, page: int = 0,
              more: bool = False, total: int = 0, seq: int = 0) -> str:
    def opts(values: Iterable[str], chosen: str) -> str:
        return "<option value=''>all</option>" + "".join(
            f"<option{' selected' if v == chosen else ''}>{_e(v)}</option>" for v in values)

    filters = (
        "<form class=filters method=get action='/runs'>"
        f"<label>experiment <select name=experiment>{opts(titles, q.get('experiment', ''))}</select></label>"
        f"<label>verdict <select name=outcome>{opts(OUTCOMES, q.get('outcome', ''))}</select></label>"
        f"<label>text <input name=q value='{_e(q.get('q', ''))}' placeholder='run id, title, reason'></label>"
        "<button>filter</button></form>"
    )
    head = ("<tr><th>experiment / run</th><th>platform</th><th>start</th><th>duration</th><th>phase / verdict</th>"
            "<th>detection</th><th>recovery</th><th>lost writes</th><th></th></tr>")
    body = "".join(run_row(r) for r in rows) or "<tr><td colspan=9 class=muted>no runs yet</td></tr>"
    nav = "".join((
        f"<a href='/runs?{urlencode({**q, 'page': page - 1})}'>&larr; newer</a> " if page else "",
        f"<a id=older href='/runs?{urlencode({**q, 'page': page + 1})}'>older &rarr;</a>" if more else "",
    ))
    # the newest page follows the runs directory live (app.runs_stream); older pages stay still
    live = f" data-stream='/api/runs/stream?{urlencode({**q, 'from': seq})}'" if page == 0 else ""
    return (f"<h1>Runs</h1>{filters}<table id=runs{live}>"
            f"{head}{body}</table><p class=muted>{nav} showing {len(rows)} of {total} runs; "
            f"index refreshed and queried in {server_ms:.0f} ms.</p>")


def ledger_table(entries: list[dict[str, Any]], alive: dict[str, bool] | None = None) -> str:
    if not entries:
        return "<p class=muted id=faults-none>no fault in force</p>"
    rows = "".join(
        f"<tr><td>{_e(e.get('run_id', ''))}"
        + (f" ({'runner alive' if alive.get(str(e.get('run_id'))) else 'runner DEAD: run chaoslab recover'})"
           if alive is not None else "")
        + f"</td><td>{_e(e.get('fault'))}</td><td>{_e(_target(e))}</td><td>{_e(e.get('status'))}</td>"
        f"<td>{_when(e.get('written'))}</td></tr>"
        for e in entries
    )
    return ("<table class=ledger><tr><th>run</th><th>fault</th><th>target</th><th>status</th><th>written</th></tr>"
            f"{rows}</table>")


def _target(e: dict[str, Any]) -> str:
    t = e.get("target") or {}
    if not isinstance(t, dict):
        return str(t)
    procs = t.get("processes") or []
    pids = ", ".join(str(p.get("pid")) for p in procs if isinstance(p, dict))
    return f"{t.get('name', '')} {t.get('kind', '')}" + (f" (pid {pids})" if pids else "")


def run_page(row: RunRow, *, csrf: str, read_only: bool, downloads: list[str], report: bool,
             live: bool, metrics: dict[str, str]) -> str:
    rid = quote(row.run_id)
    halt = "" if read_only or not live else post_form(
        f"/runs/{rid}/halt", "Halt this run", csrf,
        "Halt this run? It aborts and reverts its faults.", ident="halt")
    head = (f"<h1>{_e(row.title)}</h1><p>{badge(row.outcome, row.phase)} <span id=phase-label class=muted></span>"
            f" <small>{_e(row.run_id)}</small> · {_e(row.platform)} · started {_when(row.started_at)}</p>"
            + (f"<p class=reason>{_e(row.reason)}</p>" if row.reason else "") + halt)
    faults = f"<h2>Faults in force</h2><div id=faults data-state='/api/runs/{rid}/state'>…</div>"
    # Live, the timeline grows from the stream; after the run the same stream replays the whole
    # journal, so the finished page draws what the live one did (events and metrics on the axis).
    timeline = (f"<h2>Timeline <small class=muted>{'live' if live else 'replayed from the journal'}</small></h2>"
                f"<div id=live data-stream='/runs/{rid}/stream' data-run='{_e(row.run_id)}' "
                f"data-live='{1 if live else 0}' data-metrics='{_e(json.dumps(metrics))}'>"
                "<div id=charts></div><details><summary>events, as a list</summary>"
                "<ul id=events class=events></ul></details></div>")
    if live:
        return head + faults + timeline
    files = "".join(f"<li><a href='/runs/{rid}/files/{quote(n)}' download>{_e(n)}</a></li>" for n in downloads)
    body = head + faults + f"<h2>Downloads</h2><ul class=downloads>{files}</ul>" + timeline
    if report:
        body += (f"<h2>Report</h2><iframe id=report src='/runs/{rid}/files/report.html' "
                 "sandbox='allow-same-origin' title='report.html'></iframe>")
    return body


def experiment_page(title: str, runs: list[RunRow], cmp: Comparison | None) -> str:
    head = "".join(f"<th>{_e(label)}</th>" for label, _, _ in FIGURES.values())
    rows = "".join(
        f"<tr><td><a href='/runs/{quote(r.run_id)}'>{_e(r.run_id)}</a></td><td>{_when(r.started_at)}</td>"
        f"<td>{badge(r.outcome, r.phase)}</td>" + "".join(f"<td>{figure(c, getattr(r, c))}</td>" for c in FIGURES) + "</tr>"
        for r in runs
    )
    out = [f"<h1>{_e(title)}</h1><p class=muted>{len(runs)} runs</p>"]
    out.append(_trend_chart(runs))
    if cmp is None:
        out.append("<p class=muted>fewer than two finished runs: nothing to compare yet</p>")
    else:
        lines = "".join(
            f"<tr class='{'regression' if c.regression else ''}'><td>{_e(c.label)}</td>"
            f"<td>{figure(c.column, c.previous)}</td><td>{figure(c.column, c.newest)}</td>"
            f"<td>{'REGRESSION' if c.regression else ''}</td></tr>"
            for c in cmp.changes
        )
        flag = (f"<p class='flag bad' id=regressions>Regression: {_e('; '.join(cmp.regressions))}</p>"
                if cmp.regressions else "<p class='flag good' id=regressions>no regression</p>")
        out.append(f"<h2>Newest vs previous</h2>{flag}<table id=compare><tr><th>figure</th>"
                   f"<th>previous ({_e(cmp.previous.run_id)}, {_e(cmp.previous.outcome)})</th>"
                   f"<th>newest ({_e(cmp.newest.run_id)}, {_e(cmp.newest.outcome)})</th><th></th></tr>{lines}</table>")
    out.append(f"<h2>All runs</h2><table id=trend><tr><th>run</th><th>start</th><th>verdict</th>{head}</tr>{rows}</table>")
    return "".join(out)


def _trend_chart(runs: list[RunRow]) -> str:
    """Detection and recovery over the runs, oldest left, as report.html draws its charts."""
    from ..report import charts

    done = [r for r in reversed(runs) if not r.running]
    if len(done) < 2:
        return ""
    series = [charts.Series("detection", "#2f6fb3", [(i + 1.0, r.detection) for i, r in enumerate(done)]),
              charts.Series("time to recovery", "#d43d3d", [(i + 1.0, r.ttr) for i, r in enumerate(done)])]
    return "<div class=chart>" + charts.line_chart("Detection and recovery, run by run (s)", series,
                                                   float(len(done)), [], lambda v: f"{v:.2g}") + "</div>"


def catalog_page(entries: list[Entry]) -> str:
    rows = "".join(
        f"<tr><td><a href='/catalog/{quote(e.name)}'>{_e(e.title or e.name)}</a><br><small>{_e(e.name)}</small></td>"
        f"<td>{_e(e.kind)}</td><td>{_e('; '.join(e.faults) or (e.error or ''))}</td></tr>"
        for e in entries
    ) or "<tr><td colspan=3 class=muted>no experiment files under --experiments</td></tr>"
    return f"<h1>Catalog</h1><table id=catalog><tr><th>experiment</th><th>kind</th><th>faults</th></tr>{rows}</table>"


def entry_page(e: Entry, plan_code: int, plan: str, *, csrf: str, read_only: bool) -> str:
    confirm = (f"Start the suite '{e.title}' now? Its {len(e.faults)} experiments run one after the "
               "other and inject real faults on this machine." if e.kind == "suite"
               else f"Start '{e.title}' now? It injects real faults on this machine.")
    run = "" if read_only or e.kind not in ("experiment", "suite") else post_form(
        f"/catalog/{quote(e.name)}/run", "Run", csrf, confirm, cls="primary", ident="run")
    head = (f"<h1>{_e(e.title or e.name)}</h1><p><small>{_e(e.name)}</small> · {_e(e.kind)}</p>"
            + (f"<p>{_e(e.description)}</p>" if e.description else "")
            + (f"<p class=reason>{_e(e.error)}</p>" if e.error else ""))
    if e.kind == "suite":
        steps = "".join(f"<li>{_e(t)}</li>" for t in e.faults)
        return (head + f"<h2>Experiments, in order</h2><ol id=suite>{steps}</ol>"
                "<p class=muted>Run starts <code>chaoslab suite run</code>: each experiment's run "
                "shows on the Runs page as it starts.</p>" + run)
    state = "ok" if plan_code == 0 else f"exit {plan_code}"
    return head + f"<h2>Dry-run plan <small class=muted>({_e(state)})</small></h2><pre id=plan>{_e(plan)}</pre>{run}"


def launch_page(pid: int, kind: str = "experiment") -> str:
    what = "chaoslab suite run" if kind == "suite" else "chaoslab run"
    return (f"<h1>Starting…</h1><p id=launch data-launch='/api/launches/{pid}'>"
            f"{what} started (pid {pid}); waiting for its {'first ' if kind == 'suite' else ''}run directory…</p>"
            "<pre id=launch-log></pre>")


def machine_page(checked: Checked, entries: list[dict[str, Any]], alive: dict[str, bool],
                 halted: str | None, *, csrf: str, read_only: bool) -> str:
    if halted:
        state = f"<p class='flag bad' id=halt-state>HALT in force: {_e(halted)}</p>"
        action = "" if read_only else post_form("/machine/clear", "Clear the halt", csrf,
                                                "Clear the halt? New runs may start again.", cls="primary", ident="clear")
    else:
        state = "<p class='flag good' id=halt-state>no halt in force</p>"
        action = "" if read_only else post_form(
            "/machine/halt", "Halt every run", csrf,
            "Halt every experiment on this machine? They revert and stop; new runs refuse until cleared.",
            extra="<input name=reason placeholder='reason' value='halt from the console'>", ident="halt-all")
    doctor = checked.report
    when = (f"<p class=muted id=doctor-checked>checked at {_when(checked.at)} ({checked.age():.0f} s ago, in "
            f"{checked.seconds:.1f} s; a page load checks again once it is {FRESH:.0f} s old) "
            "<a href='/machine?refresh=1' id=doctor-refresh>check again</a></p>")
    if doctor is None:
        table = f"<p class=reason>{_e(checked.error)}</p>"
    else:
        caps = "".join(f"<tr data-cap='{_e(c['name'])}'><td>{'ok' if c['ok'] else '--'}</td><td>{_e(c['name'])}</td><td>{_e(c['detail'])}</td></tr>"
                       for c in doctor["capabilities"])
        faults = "".join(
            f"<tr class='{'' if r['ok'] else 'no'}'><td>{'yes' if r['ok'] else 'no'}</td><td>{_e(r['fault'])}</td>"
            f"<td>{_e(r['reason'] or '')}{_e('; instead: ' + r['instead'] if r['instead'] else '')}</td></tr>"
            for r in doctor["faults"])
        ok = sum(1 for r in doctor["faults"] if r["ok"])
        table = (f"<p>{ok}/{len(doctor['faults'])} faults can run here.</p><h3>Capabilities</h3><table id=caps>{caps}</table>"
                 f"<h3>Faults</h3><table id=doctor>{faults}</table>")
    table = when + table
    return (f"<h1>This machine</h1><h2>Global halt</h2>{state}{action}"
            f"<h2>Faults in force (the ledger, every run)</h2>{ledger_table(entries, alive)}"
            f"<h2>chaoslab doctor</h2>{table}")


def error_page(status: int, message: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{status}</title>"
            "<link rel=stylesheet href='/static/console.css'></head><body><main>"
            f"<h1>{status}</h1><p class=reason id=error>{_e(message)}</p><p><a href='/runs'>back to the runs</a></p>"
            "</main></body></html>")


def login_page(message: str = "") -> str:
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>chaoslab · sign in</title>"
            "<link rel=stylesheet href='/static/console.css'></head><body><main><h1>chaoslab console</h1>"
            + (f"<p class=reason>{_e(message)}</p>" if message else "")
            + "<form method=post action='/login'><label>token <input type=password name=token autofocus></label>"
            "<button class=primary>sign in</button></form><p class=muted>The token was printed by "
            "<code>chaoslab serve</code> when it started.</p></main></body></html>")

