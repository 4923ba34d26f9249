"""What watching cost (issue 29.4): chaoslab's own CPU per phase, per operation and its start-up,
recorded in the journal by a real `chaoslab run` and shown in its findings."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from tests.conftest import PY, Service, chaoslab_argv, child_env, the_run_dir

from chaoslab.journal import read_journal


def _run(tmp_path: Path, service: Service, rate: int | None) -> dict[str, Any]:
    base = f"http://127.0.0.1:{service.port}"
    exp: dict[str, Any] = {
        "title": f"watching cost at {rate}/s",
        "targets": {"svc": {"pid": service.pid}},
        "probes": {"health": {"http": {"url": f"{base}/health"}, "every": "200ms"}},
        "method": [{"fault": "process.pause", "target": "svc", "at": "2s", "duration": "1s"}],
        "recovery": "2s",
    }
    if rate:
        exp["load"] = {"http": {"url": f"{base}/health", "rate": f"{rate}/s", "timeout": "1s", "max_lag": "1s"}}
    name = f"cost-{rate}"
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(exp))
    runs = tmp_path / name
    proc = subprocess.run([*chaoslab_argv("run", str(f), "--runs-dir", str(runs))], capture_output=True,
                          text=True, env=child_env(tmp_path / f"state-{name}"), timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    run_dir = the_run_dir(runs)
    analysis: dict[str, Any] = json.loads((run_dir / "analysis.json").read_text())
    analysis["journal"] = read_journal(run_dir)
    return analysis


def test_phases_record_the_runners_cpu_and_the_analysis_prices_each_operation(tmp_path: Path, service: Service) -> None:
    quiet = _run(tmp_path, service, None)
    loaded = _run(tmp_path, service, 800)
    for a in (quiet, loaded):
        marks = [r for r in a["journal"] if r["type"] == "phase"]
        assert [m["name"] for m in marks][:3] == ["baseline", "fault", "recovery"]
        cpus = [m["cpu"] for m in marks]
        assert cpus == sorted(cpus) and cpus[0] > 0  # the runner's CPU time, never going back
        m = a["metrics"]
        spent = sum(m[f"chaoslab_cpu.{p}"] for p in ("baseline", "fault", "recovery"))
        assert abs(m["chaoslab_cpu"] - spent) < 1e-6
        # the three phases run from the baseline mark to the next mark after recovery
        end = next(x for x in marks if x["name"] not in ("baseline", "fault", "recovery"))
        assert abs(spent - (end["cpu"] - marks[0]["cpu"])) < 1e-5
        assert 0 < m["chaoslab_startup"] < 30  # from the process's start to its first sample
        assert any(line.startswith("Watching cost") for line in a["findings"]), a["findings"]
    m = loaded["metrics"]
    # sending 800 requests a second costs more CPU than probing alone: the figure is the runner's own
    assert m["chaoslab_cpu_share.baseline"] > quiet["metrics"]["chaoslab_cpu_share.baseline"]
    per_op = m["chaoslab_cpu_per_op.baseline"]
    assert per_op == m["chaoslab_cpu.baseline"] / m["operations.baseline"]
    assert 1e-6 < per_op < 5e-3, per_op
    assert quiet["metrics"]["chaoslab_cpu_per_op"] is None  # no operation, no price per operation


def test_the_start_up_figure_starts_when_the_process_did(tmp_path: Path) -> None:
    """``run.process_started_at`` is the process's start to within a clock tick. psutil's
    ``create_time()`` adds the start's ticks to a boot time in whole seconds, which put every
    start up to 1 s early (0.41 s on this machine) and that much into ``chaoslab_startup``."""
    code = "from chaoslab.runner.run import process_started_at; print(repr(process_started_at()))"
    before = time.time()
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True,
                         env=child_env(tmp_path / "state")).stdout
    after = time.time()
    started = float(out)
    # the child cannot have started before it was spawned (a tick's rounding aside), nor after it ended
    assert before - 0.02 <= started <= after, (started - before, after - started)
