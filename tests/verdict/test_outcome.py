"""The run's outcome reaches analysis.json, and `chaoslab report` re-renders the same one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import Service

from chaoslab.cli.commands import report
from chaoslab.experiment.loader import load_experiment
from chaoslab.runner.run import RunOptions, run_experiment


def _experiment(svc: Service, hypothesis: str) -> str:
    return f"""
title: outcome test
targets:
  svc: {{pid: {svc.pid}}}
probes:
  health: {{http: {{url: "http://127.0.0.1:{svc.port}/health"}}, every: 100ms, timeout: 200ms}}
method:
  - {{fault: process.pause, target: svc, at: 300ms, duration: 500ms}}
recovery: 500ms
hypothesis:
  {hypothesis}
"""


@pytest.mark.parametrize(
    ("bound", "outcome", "code"),
    [
        ("probe.health.availability.baseline: {min: 0.5}", "held", 0),
        # a paused service answers no health check during the fault
        ("probe.health.availability.fault: {min: 1.0}", "violated", 1),
    ],
)
def test_analysis_json_carries_the_outcome(
    tmp_path: Path, service: Service, state_dir: Path, bound: str, outcome: str, code: int
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(_experiment(service, bound))
    result = run_experiment(
        load_experiment(f), RunOptions(run_root=tmp_path / "runs", reports=("json",))
    )
    assert result.run_dir is not None
    summary = json.loads((result.run_dir / "summary.json").read_text())
    analysis = json.loads((result.run_dir / "analysis.json").read_text())
    assert (result.outcome, result.exit_code) == (outcome, code)
    assert summary["outcome"] == analysis["outcome"] == outcome

    (result.run_dir / "analysis.json").unlink()
    cli = CliRunner().invoke(report, [str(result.run_dir), "--format", "json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads((result.run_dir / "analysis.json").read_text())["outcome"] == outcome
