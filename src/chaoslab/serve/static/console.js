// chaoslab console: the live parts of the pages. No framework, no CDN: the console works offline.
// The run page follows the journal by server-sent events (live.py) and draws the timeline as SVG,
// the way report.html's charts (report/charts.py) draw a finished run.
"use strict";

const W = 900, H = 180, L = 60, R = 16, T = 22, B = 24;
const FAULT_FILL = "#f4b6b6";

function svgEl(tag, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(v) {
  if (v <= 0) return 1;
  for (let e = -6; e < 10; e++) for (const s of [1, 2, 2.5, 5]) { const c = s * 10 ** e; if (c >= v) return c; }
  return v;
}

// One time-series chart: series = [{label, color, points: [[t, v|null]]}], windows = [[a, b]],
// marks = [{t}]: the run's events as thin lines on the same time axis (the events lane names them).
function lineChart(title, series, tEnd, windows, fmtY, yMax, marks) {
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": title});
  const vals = series.flatMap(s => s.points.map(p => p[1]).filter(v => v !== null));
  const hi = yMax !== undefined ? yMax : niceMax(Math.max(0, ...vals) * 1.05);
  const pw = W - L - R, ph = H - T - B;
  const x = t => L + pw * Math.min(Math.max(t, 0), tEnd) / tEnd;
  const y = v => T + ph * (1 - Math.min(Math.max(v, 0), hi) / hi);
  svg.appendChild(svgEl("text", {x: L, y: 14, class: "ct"}, title));
  for (const [a, b] of windows) {
    svg.appendChild(svgEl("rect", {x: x(a), y: T, width: Math.max(1, x(b) - x(a)), height: ph,
      fill: FAULT_FILL, opacity: 0.5, class: "fault-window"}));
  }
  for (const m of marks || []) {
    svg.appendChild(svgEl("line", {x1: x(m.t), x2: x(m.t), y1: T, y2: T + ph, stroke: m.color, "stroke-dasharray": "2,3",
      opacity: 0.7, class: "event-line"}));
  }
  for (let i = 0; i <= 4; i++) {
    const v = hi * i / 4;
    svg.appendChild(svgEl("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#ddd"}));
    svg.appendChild(svgEl("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "ax"}, fmtY(v)));
  }
  const step = Math.max(1, Math.round(tEnd / 10));
  for (let t = 0; t <= tEnd; t += step) svg.appendChild(svgEl("text", {x: x(t), y: H - 6, "text-anchor": "middle", class: "ax"}, `${t}s`));
  let lx = L + 8;
  for (const s of series) {
    let d = "", pen = false;
    for (const [t, v] of s.points) {
      if (v === null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`; pen = true;
    }
    svg.appendChild(svgEl("path", {d, fill: "none", stroke: s.color, "stroke-width": 1.6}));
    for (const [t, v] of s.failed || []) {  // a probe's failing samples: red dots on its line
      svg.appendChild(svgEl("circle", {cx: x(t), cy: v === null ? T + ph : y(v), r: 2.5, fill: "#d43d3d", class: "failed"}));
    }
    svg.appendChild(svgEl("text", {x: lx, y: T + 12, fill: s.color, class: "lg"}, s.label));
    lx += 12 + 7 * s.label.length;
  }
  return svg;
}

// Probe lanes: one row per probe, a green or red tick per sample.
function lanes(probes, tEnd, windows) {
  const names = Object.keys(probes);
  const h = T + 18 * names.length + B;
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${h}`, width: "100%", role: "img", "aria-label": "probes"});
  const pw = W - L - R;
  const x = t => L + pw * Math.min(Math.max(t, 0), tEnd) / tEnd;
  svg.appendChild(svgEl("text", {x: L, y: 14, class: "ct"}, "Probes (green ok, red failing)"));
  for (const [a, b] of windows) svg.appendChild(svgEl("rect", {x: x(a), y: T, width: Math.max(1, x(b) - x(a)), height: 18 * names.length, fill: FAULT_FILL, opacity: 0.5}));
  names.forEach((name, i) => {
    const yy = T + 18 * i;
    svg.appendChild(svgEl("text", {x: L - 6, y: yy + 13, "text-anchor": "end", class: "ax"}, name));
    for (const [t, ok] of probes[name]) svg.appendChild(svgEl("rect", {x: x(t), y: yy + 2, width: 2, height: 14, fill: ok ? "#2e9d4b" : "#d43d3d"}));
  });
  return svg;
}

// The events lane: one row per source (stack, docker, kubernetes, profile, ebpf, runner, run), a
// marker per event at its time with a short label, the whole record in its tooltip; a
// flamegraph's marker links to its SVG.
const SOURCE_COLORS = {stack: "#b36b00", docker: "#1e8449", kubernetes: "#2f6fb3", profile: "#8e44ad",
  ebpf: "#555", runner: "#777", run: "#d43d3d"};

function eventsLane(marks, tEnd, windows) {
  const rows = [...new Set(marks.map(m => m.row))];
  const RH = 26;
  const h = T + RH * rows.length + B;
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${h}`, width: "100%", role: "img", "aria-label": "events"});
  const pw = W - L - R;
  const x = t => L + pw * Math.min(Math.max(t, 0), tEnd) / tEnd;
  svg.appendChild(svgEl("text", {x: L, y: 14, class: "ct"}, "Events (hover a marker for the whole record)"));
  for (const [a, b] of windows) svg.appendChild(svgEl("rect", {x: x(a), y: T, width: Math.max(1, x(b) - x(a)), height: RH * rows.length, fill: FAULT_FILL, opacity: 0.5}));
  const labelEnd = {};
  for (const m of [...marks].sort((a, b) => a.t - b.t)) {
    const i = rows.indexOf(m.row), yy = T + RH * i;
    if (labelEnd[m.row] === undefined) {  // the row's name, in the 60 px left of the axis
      svg.appendChild(svgEl("text", {x: L - 6, y: yy + 16, "text-anchor": "end", class: "ax"}, m.row === "kubernetes" ? "k8s" : m.row));
    }
    const g = svgEl("g", {class: "event-mark", "data-source": m.row, "data-t": m.t.toFixed(3)});
    g.appendChild(svgEl("title", {}, `${m.t.toFixed(2)} s  ${m.text}`));
    g.appendChild(svgEl("path", {d: `M${x(m.t)},${yy + 3}l5,8l-5,8l-5,-8z`, fill: m.color}));
    const lx = x(m.t) + 7;
    if (lx > (labelEnd[m.row] || 0) && lx < W - R - 20) {  // a label where it does not cover the one before
      g.appendChild(svgEl("text", {x: lx, y: yy + 15, class: "ax"}, m.label));
      labelEnd[m.row] = lx + 6 * m.label.length + 8;
    } else if (labelEnd[m.row] === undefined) labelEnd[m.row] = 0;
    if (m.href) {
      const a = svgEl("a", {href: m.href, target: "_blank"});
      a.appendChild(g);
      svg.appendChild(a);
    } else svg.appendChild(g);
  }
  return svg;
}

function describe(rec) {  // an event record's fields beside its source and kind, as "key=value"
  return Object.entries(rec).filter(([k]) => !["type", "t", "source", "kind"].includes(k))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
}

// The live state of one run, fed record by record from the journal.
class LiveRun {
  constructor(root) {
    this.root = root;
    this.runId = root.dataset.run;
    this.loads = [];        // cumulative load counters, once a second
    this.probes = {};       // probe -> [[t, ok]]
    this.metricQueries = JSON.parse(root.dataset.metrics || "{}");  // Prometheus probe -> its PromQL
    this.metrics = {};      // Prometheus probe -> {points: [[t, value|null]], failed: [[t, value|null]]}
    this.windows = {};      // "step/occurrence" -> [start, end|null]
    this.latency = {};      // 1 s window -> {p50, p99}: from the load's history (live.py)
    this.marks = [];        // the run's events, drawn on the time axis
    this.ebpf = {};         // eBPF series -> {window start: count}, as analysis/ebpf.py sums them
    this.tLast = 0;
    this.phase = null;
    this.records = 0;
    this.pending = false;
    window.chaoslabLatency = [];  // bench/console.py: seconds from a record's write to its arrival
  }

  feed(rec) {
    this.records++;
    if (typeof rec.t === "number") this.tLast = Math.max(this.tLast, rec.t);
    if (typeof rec.bench_wall === "number") window.chaoslabLatency.push(Date.now() / 1000 - rec.bench_wall);
    switch (rec.type) {
      case "phase": this.setPhase(rec.name); break;
      case "load": this.loads.push(rec); break;
      case "sample":
        (this.probes[rec.probe] = this.probes[rec.probe] || []).push([rec.t, !!rec.ok]);
        if (rec.probe in this.metricQueries) {
          const m = this.metrics[rec.probe] = this.metrics[rec.probe] || {points: [], failed: []};
          const v = typeof rec.value === "number" ? rec.value : null;  // no data: a gap in the line
          m.points.push([rec.t, v]);
          if (!rec.ok) m.failed.push([rec.t, v]);
        }
        break;
      case "fault": {
        const key = `${rec.step}/${rec.occurrence || 0}`;
        if (rec.action === "inject") this.windows[key] = [rec.t, null];
        else if ((rec.action === "revert" || rec.action === "end") && this.windows[key]) this.windows[key][1] = rec.t;
        this.event(rec.t, `${rec.action} ${rec.describe || rec.fault}`, rec.action === "inject" ? "bad" : "");
        break;
      }
      case "abort": this.event(rec.t, `abort: ${rec.reason}`, "bad"); this.mark(rec.t, "run", "abort", rec.reason); break;
      case "stop": this.event(rec.t, `stop condition ${rec.condition}: ${rec.reason}`, "bad"); this.mark(rec.t, "run", "stop", rec.reason); break;
      case "event": this.platformEvent(rec); break;
      case "error": this.event(rec.t, `error: ${rec.what || ""} ${rec.error || ""}`, "bad"); this.mark(rec.t, "run", "error", `${rec.what || ""} ${rec.error || ""}`); break;
    }
    this.root.dataset.records = this.records;
    this.schedule();
  }

  platformEvent(rec) {
    if (rec.source === "ebpf" && typeof rec.window === "number") {  // a per-second count: a series, not a marker
      const key = rec.kind === "tcp_state" ? `tcp_state_${String(rec.state).toLowerCase()}`
        : rec.kind.startsWith("sched_wait") ? `${rec.kind}_avg_us` : rec.kind;
      const series = this.ebpf[key] = this.ebpf[key] || {};
      if (key.endsWith("_avg_us")) series[rec.t] = rec.avg_us || 0;
      else series[rec.t] = (series[rec.t] || 0) + (rec.count || 0);
      return;
    }
    const who = rec.service || rec.container || rec.pod || rec.object || rec.phase || rec.action || "";
    const text = `${rec.source} ${rec.kind}${who ? " " + who : ""}${rec.message ? ": " + rec.message : ""}`;
    this.event(rec.t, text, rec.detect ? "bad" : "");
    const href = rec.source === "profile" && rec.kind === "flamegraph" && rec.path
      ? `/runs/${encodeURIComponent(this.runId)}/files/${encodeURIComponent(rec.path)}` : null;
    // a record with a message (stack, kubernetes) shows it with what it is about and, for an
    // aggregated Kubernetes Event, how often it happened in the run
    const times = rec.count > 1 ? ` (${rec.count} times)` : "";
    this.mark(rec.t, rec.source, `${rec.kind}${who ? " " + who : ""}`,
      `${rec.source} ${rec.kind}${who ? " " + who : ""}: ${rec.message ? rec.message + times : describe(rec)}`, href);
  }

  mark(t, row, label, text, href) {
    this.marks.push({t, row, label, text, href, color: SOURCE_COLORS[row] || "#444"});
  }

  setLatency(windows) {
    Object.assign(this.latency, windows);
    this.schedule();
  }

  setPhase(name) {
    this.phase = name;
    const b = document.querySelector("main .badge");
    if (b && b.classList.contains("running")) { b.textContent = name; b.dataset.phase = name; }
  }

  event(t, text, cls) {
    const li = document.createElement("li");
    li.textContent = `${t.toFixed(2)} s  ${text}`;
    if (cls) li.className = cls;
    document.getElementById("events").appendChild(li);
  }

  schedule() {  // at most one redraw per frame, however fast records come
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    const tEnd = Math.max(10, Math.ceil(this.tLast));
    const wins = Object.values(this.windows).map(([a, b]) => [a, b === null ? this.tLast : b]);
    const marks = this.marks;
    const tput = [], sched = [], errs = [];
    for (let i = 1; i < this.loads.length; i++) {
      const a = this.loads[i - 1], b = this.loads[i], dt = b.t - a.t;
      if (dt <= 0) continue;
      const n = b.scheduled - a.scheduled;
      const bad = (b.failed - a.failed) + (b.timeout - a.timeout) + (b.unsent - a.unsent);
      tput.push([b.t, (b.ok - a.ok) / dt]); sched.push([b.t, n / dt]);
      errs.push([b.t, n > 0 ? Math.min(1, Math.max(0, bad / n)) : null]);
    }
    const charts = document.getElementById("charts");
    charts.replaceChildren();
    if (this.loads.length) {
      charts.appendChild(lineChart("Throughput (operations per second)", [
        {label: "ok/s", color: "#2f6fb3", points: tput}, {label: "scheduled/s", color: "#aaa", points: sched}],
        tEnd, wins, v => v.toFixed(0), undefined, marks));
      charts.appendChild(lineChart("Error rate (failures, timeouts, unsent)", [
        {label: "error rate", color: "#d43d3d", points: errs}], tEnd, wins, v => `${(v * 100).toFixed(0)}%`, 1, marks));
    }
    const ms = v => v < 1 ? `${(v * 1000).toPrecision(3)} ms` : `${v.toPrecision(3)} s`;
    const windows = Object.keys(this.latency).map(Number).sort((a, b) => a - b);
    if (windows.length) {
      charts.appendChild(lineChart("Latency of successful operations (from due time)", [
        {label: "p50", color: "#2f6fb3", points: windows.map(w => [w + 0.5, this.latency[w].p50])},
        {label: "p99", color: "#8e44ad", points: windows.map(w => [w + 0.5, this.latency[w].p99])}],
        tEnd, wins, ms, undefined, marks));
    }
    if (marks.length) charts.appendChild(eventsLane(marks, tEnd, wins));
    if (Object.keys(this.probes).length) charts.appendChild(lanes(this.probes, tEnd, wins));
    const palette = ["#2f6fb3", "#d43d3d", "#b36b00", "#8e44ad", "#1e8449", "#555"];
    for (const [i, [name, m]] of Object.entries(this.metrics).entries()) {
      const chart = lineChart(`System metric: ${name} (Prometheus probe)`,
        [{label: name, color: palette[i % palette.length], points: m.points, failed: m.failed}], tEnd, wins,
        v => v.toPrecision(3), undefined, marks);
      chart.insertBefore(svgEl("title", {}, `PromQL: ${this.metricQueries[name]}`), chart.firstChild);
      chart.dataset.query = this.metricQueries[name];
      charts.appendChild(chart);
    }
    const series = (keys, f) => keys.map((k, i) => ({label: k, color: palette[i % palette.length],
      points: Object.entries(this.ebpf[k]).map(([t, v]) => [Number(t) + 0.5, f(v)]).sort((a, b) => a[0] - b[0])}));
    const counted = Object.keys(this.ebpf).filter(k => !k.endsWith("_avg_us")).sort();
    if (counted.length) {
      charts.appendChild(lineChart("Kernel events per second (eBPF)", series(counted, v => v), tEnd, wins,
        v => v.toFixed(0), undefined, marks));
    }
    const waits = Object.keys(this.ebpf).filter(k => k.endsWith("_avg_us")).sort();
    if (waits.length) {
      charts.appendChild(lineChart("Scheduler run-queue wait, average (eBPF)", series(waits, v => v / 1e6), tEnd, wins,
        ms, undefined, marks));
    }
  }
}

function followRun(root) {
  const run = new LiveRun(root);
  // EventSource resends Last-Event-ID (the byte offset) by itself when it reconnects.
  const es = new EventSource(root.dataset.stream);
  es.onmessage = ev => { try { run.feed(JSON.parse(ev.data)); } catch (e) { /* a torn line: skip */ } };
  es.addEventListener("latency", ev => run.setLatency(JSON.parse(ev.data)));
  es.addEventListener("end", () => {
    es.close();
    root.dataset.ended = "1";
    // a page that watched the run live turns into the finished run's page (downloads, report)
    if (root.dataset.live === "1") setTimeout(() => location.reload(), 300);
  });
}

function pollState(el) {
  const tick = async () => {
    try {
      const r = await fetch(el.dataset.state, {headers: {accept: "application/json"}});
      if (r.ok) {
        const s = await r.json();
        el.innerHTML = s.faults_html;
        el.dataset.count = s.faults.length;
        const halt = document.getElementById("halt");
        if (halt && !s.runner_alive && s.outcome) halt.disabled = true;
      }
    } catch (e) { /* the console restarting: try again */ }
    setTimeout(tick, 1000);
  };
  tick();
}

// The Runs page follows the runs directory by server-sent events (app.runs_stream): each event
// holds the rows that changed (a new run, a live row's phase, a finished row's verdict) and the
// rows to drop; the rest of the table is left as it is.
function followRuns(table) {
  const es = new EventSource(table.dataset.stream);
  es.onmessage = ev => {
    const u = JSON.parse(ev.data);
    for (const id of u.drop) { const tr = rowOf(table, id); if (tr) tr.remove(); }
    for (const r of u.rows) {
      const tpl = document.createElement("template");
      tpl.innerHTML = `<table><tbody>${r.html}</tbody></table>`;
      const tr = tpl.content.querySelector("tr");
      const old = rowOf(table, r.run_id);
      if (old) { old.replaceWith(tr); continue; }
      // newest first: before the first row that started earlier
      const rows = [...table.querySelectorAll("tr[data-run]")];
      const after = rows.find(x => Number(x.dataset.started) < (r.started_at || 0));
      const empty = table.querySelector("td.muted");
      if (empty) empty.parentElement.remove();
      if (after) after.before(tr); else table.querySelector("tr").parentElement.appendChild(tr);
    }
    table.dataset.seq = u.seq;
  };
}

function rowOf(table, id) {
  return table.querySelector(`tr[data-run="${CSS.escape(id)}"]`);
}

function pollLaunch(el) {
  const tick = async () => {
    const r = await fetch(el.dataset.launch, {headers: {accept: "application/json"}});
    if (r.ok) {
      const s = await r.json();
      if (s.run_id) { location.href = `/runs/${encodeURIComponent(s.run_id)}`; return; }
      if (s.exit_code !== null) {
        el.textContent = `chaoslab run ended with exit ${s.exit_code} before its run began:`;
        document.getElementById("launch-log").textContent = s.log || "";
        return;
      }
    }
    setTimeout(tick, 250);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", ev => { if (!confirm(form.dataset.confirm)) ev.preventDefault(); });
  }
  const live = document.getElementById("live");
  if (live) followRun(live);
  const faults = document.getElementById("faults");
  if (faults) pollState(faults);
  const runs = document.getElementById("runs");
  if (runs && runs.dataset.stream) followRuns(runs);
  const launch = document.getElementById("launch");
  if (launch) pollLaunch(launch);
});
