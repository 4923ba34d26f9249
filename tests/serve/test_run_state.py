"""A run whose runner was killed mid-fault is shown as such, with its faults still in force from
the ledger, not as running for ever (the stale status LitmusChaos users report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import (
    ROOT,
    Service,
    chaoslab_argv,
    child_env,
    kill_mid_fault,
    proc_state,
    stopped,
    the_run_dir,
)

pytestmark = [pytest.mark.slow, pytest.mark.root]

EXPERIMENT = (ROOT / "examples" / "basic" / "pause-under-load.yaml").read_text().replace(
    "{fault: process.pause, target: svc, at: 4s, duration: 3s}",
    "{fault: process.pause, target: svc, at: 1s, duration: 60s}",
).replace("max_duration: 1m", "max_duration: 3m")


def test_killed_runner_shows_dead_with_its_faults_in_force(serve: Any, service: Service, tmp_path: Path) -> None:
    import subprocess

    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT.replace("${PORT:-8081}", str(service.port)))
    runs, state = tmp_path / "runs", tmp_path / "state"
    state.mkdir()
    try:
        kill_mid_fault(exp, runs, state)
        assert stopped(service.pid)
        run_id = the_run_dir(runs).name
        server = serve("--runs-dir", str(runs))
        s = httpx.get(f"{server.url}/api/runs/{run_id}/state", timeout=60).json()
        assert s["runner_alive"] is False and s["phase"] == "runner died"
        assert [f["fault"] for f in s["faults"]] == ["process.pause"]
        assert "runner DEAD: run chaoslab recover" in s["faults_html"]
        row = httpx.get(f"{server.url}/api/runs", timeout=60).json()["runs"][0]
        assert row["run_id"] == run_id and row["phase"] == "runner died" and row["outcome"] is None
        page = httpx.get(f"{server.url}/runs/{run_id}", timeout=60).text
        assert "runner died" in page
    finally:
        subprocess.run(chaoslab_argv("recover"), env=child_env(state), capture_output=True, timeout=60, check=False)
    assert proc_state(service.pid) != "T"
