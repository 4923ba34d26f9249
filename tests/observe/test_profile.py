"""Flamegraphs with real py-spy: per phase during a run, and the one-off `chaoslab profile`;
both name the service's hot function."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import PY, free_port, wait_for_port

from chaoslab.experiment.loader import load_experiment
from chaoslab.journal import read_journal
from chaoslab.observe.flamegraph import hot_functions
from chaoslab.runner.run import RunOptions, run_experiment

from .conftest import Procs

HOT = "chaoslab_hot_checksum"


def hot_service(procs: Procs) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = procs.app("hot_service.py", str(port))
    wait_for_port(port)
    return proc, port


def test_flamegraph_per_phase_names_the_hot_function(
    procs: Procs, tmp_path: Path, state_dir: Path
) -> None:
    api, _ = hot_service(procs)
    other = procs.start([PY, "-c", "import time; time.sleep(60)"])
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""
title: profile per phase
targets:
  api: {{pid: {api.pid}}}
  other: {{pid: {other.pid}}}
method:
  - {{fault: process.pause, target: other, at: 3s, duration: 3s}}
recovery: 2s
observe: {{profile: {{target: api, phases: [baseline, fault]}}}}
""")
    result = run_experiment(
        load_experiment(exp),
        RunOptions(run_root=tmp_path / "runs", reports=("json",), print=lambda s: None),
    )
    assert result.exit_code == 0 and result.run_dir is not None, result.reason
    events = [
        r
        for r in read_journal(result.run_dir)
        if r["type"] == "event" and r.get("source") == "profile"
    ]
    graphs = {r["phase"]: r for r in events if r["kind"] == "flamegraph"}
    assert set(graphs) == {"baseline", "fault"}, events
    for phase, rec in graphs.items():
        svg = result.run_dir / rec["path"]
        assert svg.name == f"flamegraph-{phase}.svg" and svg.stat().st_size > 1000
        assert rec["samples"] >= 50, rec  # ~3 s at 100 Hz
        assert HOT in rec["hot"][0]["function"] and rec["hot"][0]["share"] > 0.4, rec
    assert not (result.run_dir / "flamegraph-recovery.svg").exists()
    # the analysis names the hot function; the report links each phase's flamegraph
    analysis = result.analysis or {}
    assert any(
        "CPU profile of the fault phase: hottest" in f and HOT in f for f in analysis["findings"]
    )
    from chaoslab.report import write_reports

    write_reports(result.run_dir, ("html",), analysis=analysis)
    assert "href='flamegraph-fault.svg'" in (result.run_dir / "report.html").read_text()


def test_profile_command_writes_an_svg_and_names_the_hot_function(
    procs: Procs, tmp_path: Path
) -> None:
    api, port = hot_service(procs)
    out = tmp_path / "api.svg"
    proc = subprocess.run(
        [PY, "-m", "chaoslab", "profile", str(api.pid), "--duration", "2s", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and HOT in proc.stdout.splitlines()[1], proc.stdout
    total, hot = hot_functions(out)
    assert total >= 100 and HOT in hot[0].function, (total, hot)

    # a command-line pattern works too
    by_pattern = subprocess.run(
        [
            PY,
            "-m",
            "chaoslab",
            "profile",
            f"hot_service.py {port}$",
            "--duration",
            "1s",
            "-o",
            str(tmp_path / "p.svg"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert by_pattern.returncode == 0 and HOT in by_pattern.stdout, by_pattern.stderr


def test_profile_command_errors_are_one_line(tmp_path: Path) -> None:
    gone = subprocess.run(
        [PY, "-m", "chaoslab", "profile", "no-such-process-chaoslab-obs", "--duration", "1s"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert gone.returncode != 0 and "Traceback" not in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1 and gone.stderr.startswith("chaoslab: "), (
        gone.stderr
    )
    bad = subprocess.run(
        [PY, "-m", "chaoslab", "profile", str(os.getpid()), "--duration", "soon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "invalid duration" in bad.stderr, bad.stderr
