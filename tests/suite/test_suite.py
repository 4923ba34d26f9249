"""Suites: experiments in order, pause and readiness, stop or continue on failure, one report."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import PY, ROOT, child_env, free_port, ledger_entries

from chaoslab.stack import Stack

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the stack needs root for cgroups")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    (tmp_path / "stack.yaml").write_text(f"""
name: suitetest
services:
  svc:
    command: [{PY!r}, {str(ROOT / "examples" / "basic" / "service.py")!r}, --port, "{port}"]
    healthcheck: {{http: "http://127.0.0.1:{port}/health", interval: 200ms, start_interval: 50ms}}
    restart: {{policy: always, backoff: 100ms}}
""")
    probe = (
        f'health: {{http: {{url: "http://127.0.0.1:{port}/health"}}, every: 100ms, timeout: 200ms}}'
    )
    (tmp_path / "pause.yaml").write_text(f"""
title: pause it
stack: stack.yaml
targets: {{svc: {{service: svc}}}}
probes: {{{probe}}}
method: [{{fault: process.pause, target: svc, at: 300ms, duration: 500ms}}]
recovery: 1s
hypothesis: {{probe.health.availability.recovery: {{min: 0.5}}}}
""")
    (tmp_path / "kill.yaml").write_text(f"""
title: kill it (restarted by policy)
stack: stack.yaml
targets: {{svc: {{service: svc}}}}
probes: {{{probe}}}
method: [{{fault: process.kill, target: svc, at: 300ms}}]
recovery: 2s
hypothesis: {{probe.health.availability.recovery: {{min: 0.5}}}}
""")
    (tmp_path / "strict.yaml").write_text(f"""
title: an impossible bound
stack: stack.yaml
targets: {{svc: {{service: svc}}}}
probes: {{{probe}}}
method: [{{fault: process.pause, target: svc, at: 300ms, duration: 500ms}}]
recovery: 500ms
hypothesis: {{probe.health.availability.fault: {{min: 0.99}}}}
""")
    try:
        yield tmp_path, port
    finally:
        Stack.load(tmp_path / "stack.yaml").down(purge=True)


def run_suite(path: Path, runs: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "chaoslab", "suite", "run", str(path), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=180,
        env=child_env(state),
    )


def test_suite_runs_in_order_and_writes_one_report(lab: tuple[Path, int], state_dir: Path) -> None:
    d, port = lab
    (d / "suite.yaml").write_text(f"""
name: basic suite
pause: 200ms
grace: 10s
ready: {{http: {{url: "http://127.0.0.1:{port}/health"}}, every: 100ms}}
on_failure: stop
experiments:
  - pause.yaml
  - {{path: kill.yaml, name: kill}}
  - strict.yaml
  - pause.yaml
""")
    proc = run_suite(d / "suite.yaml", d / "runs", state_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    suite_dir = next((d / "runs").iterdir())
    data = json.loads((suite_dir / "suite.json").read_text())
    assert [r["outcome"] for r in data["rows"]] == ["held", "held", "violated", "skipped"]
    assert data["rows"][1]["name"] == "kill"
    md = (suite_dir / "suite.md").read_text()
    assert "| pause it | HELD |" in md and "| an impossible bound | VIOLATED |" in md
    junit = (suite_dir / "junit.xml").read_text()
    assert 'tests="4" failures="1"' in junit and "<skipped" in junit
    assert ledger_entries(state_dir) == []


def test_a_bad_experiment_stops_the_suite_before_anything_runs(
    lab: tuple[Path, int], state_dir: Path
) -> None:
    d, _ = lab
    (d / "bad.yaml").write_text(
        "title: bad\nmethod:\n  - {fault: process.pause, target: svc, duration: 1s, grase: 2}\n"
    )
    (d / "suite.yaml").write_text("name: s\nexperiments: [pause.yaml, bad.yaml, missing.yaml]\n")
    proc = run_suite(d / "suite.yaml", d / "runs", state_dir)
    assert proc.returncode == 2
    assert f"{d / 'bad.yaml'}:3:" in proc.stderr
    assert "suite.yaml:2:" in proc.stderr and "no such experiment file" in proc.stderr
    assert not (d / "runs").exists()
