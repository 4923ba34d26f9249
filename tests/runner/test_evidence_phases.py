"""Phases that end on evidence (issue 29.1): ``baseline: {until: stable}`` and ``recovery: {until:
steady}``, with real runs of `chaoslab run` against the example service paused by process.pause.

The claim under test: a run ended early gives the verdict and the figures the full run gives. A
fixed-length run is recorded, then replayed through the runner's own evidence view in the order
its records were written, to find where a ``recovery: {until: steady}`` run would have stopped;
the run cut there is analysed again and compared, figure by figure, with the whole run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from tests.conftest import Service, assert_held, chaoslab_argv, child_env, the_run_dir

from chaoslab.analysis import analyze
from chaoslab.journal import EXPERIMENT, HISTORY, VERIFY, read_journal, read_lines
from chaoslab.runner.evidence import Evidence
from chaoslab.runner.timeline import LOOK_EVERY

#: Equal in a run ended on evidence and the same run observed longer. Not the recovery phase's own
#: rates: failures after the recovery was seen (a slow second on a busy machine) are in the longer
#: run's recovery phase only (docs/experiment-format.md, "What an early end does change").
FIGURES = ("time_to_recovery", "time_to_recovery.exact", "time_to_recovery.from_impact", "impact_onset",
           "impact_onset.exact", "detection_time", "availability.baseline", "availability.fault",
           "latency.p99.baseline", "latency.p99.fault", "lost_writes")


def _experiment(service: Service, **phases: Any) -> dict[str, Any]:
    base = f"http://127.0.0.1:{service.port}"
    return {
        "title": "pause, phases on evidence",
        "targets": {"svc": {"pid": service.pid}},
        "load": {"http": {"url": f"{base}/items", "method": "POST", "rate": "100/s", "timeout": "1s",
                          "body": {"id": "{{key}}"}, "ack": {"status": [201], "id": "$.id"}}},
        "probes": {"health": {"http": {"url": f"{base}/health"}, "every": "200ms", "timeout": "500ms"}},
        "method": [{"fault": "process.pause", "target": "svc", "at": "2s", "duration": "1500ms"}],
        "verify": {"http": {"url": f"{base}/items", "ids": "$.ids"}},
        "hypothesis": {"detection_time": {"max": "2s"}, "time_to_recovery": {"max": "5s"},
                       "lost_writes": {"max": 0}},
        "max_duration": "2m",
        **phases,
    }


def _run(tmp_path: Path, name: str, exp: dict[str, Any]) -> tuple[subprocess.CompletedProcess[str], Path]:
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(exp))
    runs = tmp_path / f"runs-{name}"
    proc = subprocess.run(chaoslab_argv("run", str(f), "--runs-dir", str(runs), "--report", "json"),
                          capture_output=True, text=True, env=child_env(tmp_path / f"state-{name}"), timeout=240)
    return proc, the_run_dir(runs)


def _phase_ends(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {r["phase"]: dict(r) for r in read_journal(run_dir)  # type: ignore[typeddict-item]
            if r["type"] == "event" and r.get("kind") == "phase_end"}


def _mark(run_dir: Path, name: str) -> float:
    return next(float(r["t"]) for r in read_journal(run_dir) if r["type"] == "phase" and r["name"] == name)


def where_steady_would_stop(run_dir: Path, hypothesis: dict[str, Any], min_after: float = 1.0) -> tuple[float, float]:
    """Replay a recorded run through the evidence view, tick by tick, with only what had been
    written by each tick (journal records by their time, history lines by the time the
    generator wrote them); returns (the time a ``recovery: {until: steady, min}`` run would have
    ended, its time to recovery)."""
    journal = read_journal(run_dir)
    ops = sorted((op for op in read_lines(run_dir / HISTORY) if "t_scheduled" in op), key=lambda op: op["t_done"])
    probes = sorted({r["probe"] for r in journal if r["type"] == "sample"})
    ev = Evidence(run_dir / "no-such-history", probes)  # fed by hand below, in writing order
    j = k = 0
    t = _mark(run_dir, "recovery")
    while True:
        t += LOOK_EVERY
        assert t < _mark(run_dir, "verify"), "the recorded run never showed a settled recovery"
        while j < len(journal) and float(journal[j]["t"]) <= t:
            ev.on_record(journal[j])
            j += 1
        while k < len(ops) and float(ops[k]["t_done"]) <= t:
            ev.take(ops[k])
            k += 1
        answer = ev.recovery_over(t, min_after, hypothesis)
        if answer is not None:
            assert ev.t_revert is not None
            return t, 0.0 if answer.recovered_at is None else max(0.0, answer.recovered_at - ev.t_revert)


def cut_at(run_dir: Path, t_stop: float, into: Path) -> Path:
    """The run as it would have been recorded had the runner ended the recovery at ``t_stop``:
    later records gone, the operations still in flight then cut (as the generator cuts them)."""
    into.mkdir()
    for name in (EXPERIMENT, VERIFY):
        shutil.copy(run_dir / name, into / name)
    kept = [r for r in read_journal(run_dir) if float(r["t"]) <= t_stop and r["type"] != "end"]
    kept += [{"type": "phase", "t": t_stop, "name": "verify"}, {"type": "phase", "t": t_stop, "name": "end"},
             {"type": "end", "t": t_stop, "errors": []}]
    (into / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    lines = []
    for op in read_lines(run_dir / HISTORY):
        if "t_scheduled" in op:
            if float(op["t_scheduled"]) > t_stop:
                continue
            if float(op["t_done"]) > t_stop:
                op = {**op, "outcome": "timeout", "t_done": t_stop, "cut": True}
        lines.append(json.dumps(op) + "\n")
    (into / HISTORY).write_text("".join(lines))
    return into


def test_recovery_until_steady_ends_early_with_the_verdict_and_figures_of_the_full_run(
        tmp_path: Path, service: Service) -> None:
    # the evidence-ended run: the baseline ends once stable (the step's `at` then counts from its end)
    proc, run_dir = _run(tmp_path, "early", _experiment(
        service, baseline={"until": "stable", "min": "3s", "max": "20s"},
        recovery={"until": "steady", "max": "30s"}))
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert_held(proc, analysis)
    ends = _phase_ends(run_dir)
    assert ends["baseline"]["why"] in ("stable", "max")  # max only if the machine never let it settle
    assert 3.0 <= ends["baseline"]["after"] <= 20.5
    t_base = _mark(run_dir, "baseline")
    # the step's `at: 2s` counts from where the baseline ended
    assert _mark(run_dir, "fault") - (t_base + ends["baseline"]["after"]) >= 2.0
    rec = ends["recovery"]
    assert rec["why"] == "steady", rec
    ph = analysis["phases"]
    assert ph["durations"]["recovery"] < 15.0  # ended on evidence, well before max (30 s)
    # what the runner saw is what the analysis of its journal says
    assert rec["time_to_recovery"] == round(analysis["metrics"]["time_to_recovery"], 6)

    # the full run, then the same run cut where the evidence would have ended it
    proc, full = _run(tmp_path, "full", _experiment(service, recovery="12s"))
    whole = json.loads((full / "analysis.json").read_text())
    assert_held(proc, whole)
    t_stop, ttr = where_steady_would_stop(full, _experiment(service)["hypothesis"])
    assert t_stop < _mark(full, "verify") - 3.0  # the early end is well before the fixed one
    short = analyze(cut_at(full, t_stop, tmp_path / "cut"))
    assert ttr == whole["metrics"]["time_to_recovery"]
    for name in FIGURES:
        assert short["metrics"][name] == whole["metrics"][name], (name, short["metrics"][name], whole["metrics"][name])
    assert [(h["name"], h["passed"]) for h in short["hypothesis"]] == [
        (h["name"], h["passed"]) for h in whole["hypothesis"]]
    assert short["held"] is whole["held"] is True


def test_a_run_that_never_recovers_ends_at_max_with_a_violation(tmp_path: Path, service: Service) -> None:
    """The service is killed: the recovery rule never fires, the phase ends at max, and the
    analysis says not recovered. Without load, so the windows are the probe's (the view's other
    basis). A fixed `baseline:` moves the step's offset by its length."""
    exp = _experiment(service, baseline="2s", recovery={"until": "steady", "max": "4s"})
    exp["method"] = [{"fault": "process.kill", "target": "svc", "at": "1s"}]
    exp.pop("verify")
    exp.pop("load")
    exp["hypothesis"] = {"time_to_recovery": {"max": "5s"}}
    proc, run_dir = _run(tmp_path, "never", exp)
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    end = _phase_ends(run_dir)["recovery"]
    assert end["why"] == "max" and end["after"] >= 4.0
    assert "max 4 s reached" in end["message"]
    assert "baseline" not in _phase_ends(run_dir)  # a fixed baseline ends on time, no evidence to give
    assert _mark(run_dir, "fault") - _mark(run_dir, "baseline") >= 3.0  # 2 s baseline + at 1 s
    assert 4.0 <= analysis["phases"]["durations"]["recovery"] < 8.0
    assert analysis["steady_state"]["basis"] == "probes"
    assert analysis["missing"]["time_to_recovery"] == "not recovered by the end of the run"
    [verdict] = analysis["hypothesis"]
    assert verdict["name"] == "time_to_recovery" and verdict["passed"] is False


BAD = [
    ("recovery: {until: steady}", "recovery.max: required field is missing"),
    ("recovery: {until: steady, max: 30x}", "recovery.max: invalid duration '30x'"),
    ("recovery: {until: stable, max: 30s}", "recovery.until: Input should be 'steady'"),
    ("recovery: {until: steady, max: 30s, mn: 2s}", "recovery.mn: unknown field 'mn' (did you mean 'min'?)"),
    ("recovery: {until: steady, max: 0s}", "recovery: max must be greater than 0"),
    ("recovery: {until: steady, max: 3s, min: 5s}", "recovery: min (5s) must not be longer than max (3s)"),
    ("recovery: -3", "recovery: duration must not be negative, got -3"),
    ("baseline: {until: stable, min: 40s, max: 30s}", "baseline: min (40s) must not be longer than max (30s)"),
    ("baseline: {until: steady, max: 30s}", "baseline.until: Input should be 'stable'"),
    ("baseline: {until: stable}", "baseline.max: required field is missing"),
    ("baseline: 10 seconds", "baseline: invalid duration '10 seconds'"),
    ("baseline: {until: stable, max: 50s}\nmax_duration: 40s",
     "max_duration: max_duration 40s is shorter than the baseline and the method (52s)"),
]


def test_bad_phase_values_are_refused_with_their_line_and_exit_2(tmp_path: Path) -> None:
    for i, (line, message) in enumerate(BAD):
        f = tmp_path / f"bad{i}.yaml"
        f.write_text("title: t\nmethod:\n  - {fault: process.kill, target: svc, at: 2s}\n"
                     "targets:\n  svc: {process: nothing-like-this}\n" + line + "\n")
        proc = subprocess.run(chaoslab_argv("validate", str(f)), capture_output=True, text=True,
                              env=child_env(tmp_path / "state"), timeout=60)
        assert proc.returncode == 2, (line, proc.stdout, proc.stderr)
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out
        where = f"{f}:7:" if "max_duration" in line else f"{f}:6:"
        assert where in out and message in out, (line, out)
