"""The exporter: `chaoslab run --metrics-port` serves the live chaos state, a real Prometheus
scrapes it, and `chaoslab exporter` serves the verdicts of a runs directory afterwards."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
from tests.conftest import PY, ROOT, free_port, wait_for_port

from .conftest import Procs, Prometheus

SERVICE = ROOT / "examples" / "basic" / "service.py"


def metric(text: str, name: str, **labels: str) -> float | None:
    """Value of the first series of ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            return float(m.group(2))
    return None


def scrape(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return ""


def test_live_exporter_scraped_by_prometheus_then_standalone(
    procs: Procs, prometheus: Prometheus, tmp_path: Path, state_dir: Path
) -> None:
    svc_port = free_port()
    svc = procs.start([PY, str(SERVICE), "--port", str(svc_port)])
    wait_for_port(svc_port)
    metrics_port = free_port()
    prom = prometheus.start([f"127.0.0.1:{metrics_port}"])
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""
title: exporter test
targets:
  svc: {{pid: {svc.pid}}}
load:
  http: {{url: "http://127.0.0.1:{svc_port}/health", rate: 20/s, timeout: 500ms}}
probes:
  health: {{http: {{url: "http://127.0.0.1:{svc_port}/health"}}, every: 200ms, timeout: 300ms}}
method:
  - {{fault: process.pause, target: svc, at: 4s, duration: 4s}}
recovery: 4s
""")
    runs = tmp_path / "runs"
    run = procs.start(
        [
            PY,
            "-m",
            "chaoslab",
            "run",
            str(exp),
            "--runs-dir",
            str(runs),
            "-q",
            "--metrics-port",
            str(metrics_port),
        ],
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(state_dir)},
    )
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        text = scrape(metrics_port)
        for key, value in {
            "active": metric(text, "chaoslab_experiment_active", experiment="exporter test"),
            "fault": metric(text, "chaoslab_fault_active", fault="process.pause", target="svc"),
            "probe_failing": metric(text, "chaoslab_probe_success", probe="health"),
            "ops_ok": metric(text, "chaoslab_load_operations_total", outcome="ok"),
            "load_latency_count": metric(text, "chaoslab_load_latency_seconds_count"),
            "probe_latency_count": metric(
                text, "chaoslab_probe_latency_seconds_count", probe="health"
            ),
        }.items():
            if value is not None:
                seen[key] = max(seen.get(key, 0.0), value if key != "probe_failing" else 1 - value)
        time.sleep(0.2)
    assert run.wait(timeout=30) in (0, 1), "the run did not finish cleanly"
    assert seen.get("active") == 1 and seen.get("fault") == 1, seen
    assert seen.get("probe_failing") == 1, seen  # the paused service fails its health probe
    assert seen.get("ops_ok", 0) > 50 and seen.get("load_latency_count", 0) > 50, seen
    assert seen.get("probe_latency_count", 0) > 10, seen

    # Prometheus kept what it scraped from the exporter during the run
    fault = prom.query(
        'max_over_time(chaoslab_fault_active{fault="process.pause",target="svc"}[5m])'
    )
    assert fault and float(fault[0]["value"][1]) == 1.0, fault
    ops = prom.query('max_over_time(chaoslab_load_operations_total{outcome="ok"}[5m])')
    assert ops and float(ops[0]["value"][1]) > 50, ops

    # after the run: the standalone exporter reads the verdict from the runs directory
    port = free_port()
    procs.start(
        [PY, "-m", "chaoslab", "exporter", "--runs-dir", str(runs), "--port", str(port)],
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(state_dir)},
    )
    wait_for_port(port)
    text = scrape(port)
    summary = next(runs.iterdir()) / "summary.json"
    outcome = json.loads(summary.read_text())["outcome"]
    assert (
        metric(text, "chaoslab_last_verdict", experiment="exporter test", outcome=outcome) == 1.0
    ), text
    assert metric(text, "chaoslab_experiment_active", experiment="exporter test") == 0.0
    assert metric(text, "chaoslab_fault_injections_total", fault="process.pause") == 1.0
    assert metric(text, "chaoslab_fault_active", fault="process.pause") == 0.0


def test_metrics_port_in_use_skips_the_exporter_not_the_run(
    procs: Procs, tmp_path: Path, state_dir: Path
) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    exp = tmp_path / "exp.yaml"
    sleeper = procs.start([PY, "-c", "import time; time.sleep(60)"])
    exp.write_text(
        "title: busy port\nmethod:\n  - {fault: process.pause, target: me, at: 0s, duration: 200ms}\n"
        f"targets:\n  me: {{pid: {sleeper.pid}}}\nrecovery: 200ms\n"
    )
    proc = subprocess.run(
        [
            PY,
            "-m",
            "chaoslab",
            "run",
            str(exp),
            "--runs-dir",
            str(tmp_path / "runs"),
            "-q",
            "--metrics-port",
            str(busy.getsockname()[1]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(state_dir)},
    )
    busy.close()
    assert proc.returncode == 0, proc.stderr
    journal = (next((tmp_path / "runs").iterdir()) / "journal.jsonl").read_text()
    assert (
        '"action":"skipped","observer":"RunExporter"' in journal
        and "Address already in use" in journal
    )
