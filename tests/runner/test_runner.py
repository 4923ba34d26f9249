"""The runner end to end through the CLI: probes see the faults, and every path reverts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import (
    PY,
    Service,
    child_env,
    injected,
    kill_mid_fault,
    ledger_entries,
    proc_state,
    run_in_fault,
    stopped,
    the_run_dir,
    wait_until,
)

from chaoslab.journal import read_journal


def experiment(
    svc: Service,
    *,
    fault: str = "process.pause",
    at: str = "300ms",
    duration: str | None = "1s",
    extra: str = "",
    recovery: str = "500ms",
    probes: str = "",
) -> str:
    dur = f", duration: {duration}" if duration else ""
    return f"""
title: core runner test
targets:
  svc: {{pid: {svc.pid}}}
probes:
  health:
    http: {{url: "http://127.0.0.1:{svc.port}/health"}}
    every: 100ms
    timeout: 200ms
  alive: {{process: {{target: svc}}, every: 100ms}}
{probes}
method:
  - {{fault: {fault}, target: svc, at: {at}{dur}}}
recovery: {recovery}
{extra}
"""


def run_cli(args: list[str], state: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "chaoslab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(state),
    )


def assert_nothing_left(svc: Service, state: Path) -> None:
    assert svc.alive()
    assert wait_until(lambda: proc_state(svc.pid) != "T"), "the target is still stopped"
    assert ledger_entries(state) == []


def samples(run_dir: Path, probe: str) -> list[dict[str, Any]]:
    return [r for r in read_journal(run_dir) if r["type"] == "sample" and r["probe"] == probe]


def phase_times(run_dir: Path) -> dict[str, float]:
    return {r["name"]: r["t"] for r in read_journal(run_dir) if r["type"] == "phase"}


def fault_times(run_dir: Path, fault: str) -> tuple[float, float]:
    """The recorded inject and revert of ``fault``: the window in which it was really in place."""
    recs = [r for r in read_journal(run_dir) if r["type"] == "fault" and r["fault"] == fault]
    return (
        next(r["t"] for r in recs if r["action"] == "inject"),
        next(r["t"] for r in recs if r["action"] == "revert"),
    )


def test_normal_run_pause_is_seen_by_probes_and_reverted(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(experiment(service))
    proc = run_cli(["run", str(f), "--runs-dir", str(tmp_path / "runs")], state_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = the_run_dir(tmp_path / "runs")
    phases = phase_times(run_dir)
    assert phases["baseline"] < phases["fault"] < phases["recovery"] < phases["end"]
    assert 0.8 < phases["recovery"] - phases["fault"] < 2.0
    health = samples(run_dir, "health")
    base = [s for s in health if s["t"] < phases["fault"]]
    # the pause as it was: from its recorded inject to its revert (the fault mark comes before the
    # target is resolved and the injection done, which a busy machine stretches); the thaw comes
    # before the revert's record (the ledger is written in between) and a sample may be
    # answered after it within its 200 ms timeout: the window ends 0.5 s before the record
    inject, revert = fault_times(run_dir, "process.pause")
    during = [s for s in health if inject <= s["t"] < revert - 0.5]
    after = [s for s in health if s["t"] > phases["recovery"] + 0.3]
    assert base and all(s["ok"] for s in base)
    assert during and not any(s["ok"] for s in during), (
        "a paused service must fail its health probe"
    )
    assert after and all(s["ok"] for s in after), "it must be healthy again after the revert"
    alive = samples(run_dir, "alive")
    assert any("stopped" in (s["error"] or "") for s in alive)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["outcome"] == "held" and summary["exit_code"] == 0
    assert_nothing_left(service, state_dir)


def test_kill_is_seen_by_the_process_probe(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(experiment(service, fault="process.kill", duration=None))
    proc = run_cli(["run", str(f), "--runs-dir", str(tmp_path / "runs")], state_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = the_run_dir(tmp_path / "runs")
    t_fault = phase_times(run_dir)["fault"]
    # the kill as recorded (once sent), not the fault mark before the target was resolved; the
    # killed process dies when the kernel next schedules it, so the probe may see it a moment
    # longer, but once seen dead it stays dead
    t_kill = next(r["t"] for r in read_journal(run_dir) if injected(r))
    alive = samples(run_dir, "alive")
    assert all(s["ok"] for s in alive if s["t"] < t_fault)
    after = [s["ok"] for s in alive if s["t"] > t_kill]
    assert False in after, "the process probe must see the kill"
    assert not any(after[after.index(False) :])
    assert service.proc.wait(timeout=5) == -signal.SIGKILL


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_reverts_and_exits_3(
    tmp_path: Path, service: Service, state_dir: Path, sig: int
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(experiment(service, duration="60s"))
    runs = tmp_path / "runs"
    with run_in_fault(f, runs, state_dir) as runner:
        assert stopped(service.pid)
        assert len(ledger_entries(state_dir)) == 1
        runner.send_signal(sig)
        out, err = runner.communicate(timeout=30)
    assert runner.returncode == 3, out + err
    assert f"interrupted by {signal.Signals(sig).name}" in out
    journal = read_journal(the_run_dir(runs))
    assert any(r["type"] == "fault" and r["action"] == "revert" for r in journal)
    assert_nothing_left(service, state_dir)


def test_exceptions_in_a_probe_are_failures_and_the_run_still_reverts(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    """Chaos Toolkit skips its rollbacks when a probe raises; here a raising probe (even one calling
    sys.exit) is a failed sample, and the run reverts and ends normally."""
    mod = tmp_path / "crashy_probe.py"
    mod.write_text(
        "import sys\ncalls = 0\ndef check():\n    global calls\n    calls += 1\n"
        "    if calls > 12:\n        sys.exit('the probe gave up')\n"
        "    if calls > 6:\n        raise RuntimeError('boom')\n    return True\n"
    )
    f = tmp_path / "exp.yaml"
    # 3 s of recovery: room for the 13 calls it takes even when a busy machine stretches the 100 ms
    f.write_text(
        experiment(
            service,
            duration="1s",
            recovery="3s",
            probes="  crashy: {python: 'crashy_probe:check', every: 100ms}",
        )
    )
    proc = subprocess.run(
        [PY, "-m", "chaoslab", "run", str(f), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**child_env(state_dir), "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = the_run_dir(tmp_path / "runs")
    errors = {s["error"] for s in samples(run_dir, "crashy") if not s["ok"]}
    assert "RuntimeError: boom" in errors
    assert "ProbeExit: SystemExit: the probe gave up" in errors
    assert [r["action"] for r in read_journal(run_dir) if r["type"] == "fault"] == [
        "inject",
        "revert",
    ]
    assert_nothing_left(service, state_dir)


def test_a_probe_that_cannot_start_aborts_after_the_baseline_began_and_the_others_sample(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    """Probes are started before the baseline mark (their start-up is not the phases' CPU); one
    whose start fails is still reported as its loop always reported it: a crash, once the
    baseline has begun, after which the run ends and reverts."""
    f = tmp_path / "exp.yaml"
    f.write_text(experiment(service, at="2s", probes="  broken: {python: 'no_such_module_xyz:check', every: 100ms}"))
    proc = run_cli(["run", str(f), "--runs-dir", str(tmp_path / "runs")], state_dir)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    run_dir = the_run_dir(tmp_path / "runs")
    journal = read_journal(run_dir)
    kinds = [r["type"] if r["type"] != "phase" else r["name"] for r in journal if r["type"] in ("phase", "abort")]
    assert kinds[:2] == ["baseline", "abort"], kinds
    abort = next(r for r in journal if r["type"] == "abort")
    assert abort["reason"] == "probe 'broken' crashed: ModuleNotFoundError: No module named 'no_such_module_xyz'"
    assert samples(run_dir, "health") and samples(run_dir, "alive")  # the probes that started did sample
    assert not [r for r in journal if r["type"] == "fault"]  # aborted before the step was due
    assert_nothing_left(service, state_dir)


def test_halt_reverts_running_experiments_and_blocks_new_ones(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(experiment(service, duration="60s"))
    runs = tmp_path / "runs"
    with run_in_fault(f, runs, state_dir) as runner:
        t0 = time.monotonic()
        assert run_cli(["halt", "--reason", "pager went off"], state_dir).returncode == 0
        out, err = runner.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    assert runner.returncode == 3, out + err
    assert "halted: pager went off" in out
    assert elapsed < 10
    assert_nothing_left(service, state_dir)
    refused = run_cli(["run", str(f), "--runs-dir", str(runs)], state_dir)
    assert refused.returncode == 4 and "a halt is in force" in refused.stderr
    assert proc_state(service.pid) != "T"
    assert run_cli(["halt", "--clear"], state_dir).returncode == 0


def test_sigkill_then_recover(tmp_path: Path, service: Service, state_dir: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(experiment(service, duration="60s"))
    runs = tmp_path / "runs"
    kill_mid_fault(f, runs, state_dir)
    # the runner died: its fault stays, and the ledger says so
    assert stopped(service.pid)
    entries = ledger_entries(state_dir)
    assert len(entries) == 1
    record = json.loads(entries[0].read_text())
    assert (
        record["fault"] == "process.pause" and record["state"]["stopped"][0]["pid"] == service.pid
    )
    # the partial journal is readable
    assert any(injected(r) for r in read_journal(the_run_dir(runs)))
    # a new run refuses while the dead run's entry is unreverted
    refused = run_cli(["run", str(f), "--runs-dir", str(tmp_path / "runs2")], state_dir)
    assert refused.returncode == 4
    assert (
        "unreverted faults of a dead run" in refused.stderr and "chaoslab recover" in refused.stderr
    )
    assert proc_state(service.pid) == "T"
    listed = run_cli(["recover", "--list"], state_dir)
    assert "process.pause" in listed.stdout and "dead" in listed.stdout
    rec = run_cli(["recover"], state_dir)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "reverted process.pause" in rec.stdout
    assert_nothing_left(service, state_dir)
    assert not (state_dir / "ledger").exists() or not any((state_dir / "ledger").iterdir())


def test_run_with_recover_flag_reverts_leftovers_first(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(experiment(service, duration="60s"))
    kill_mid_fault(f, tmp_path / "runs", state_dir)
    short = tmp_path / "short.yaml"
    short.write_text(experiment(service, duration="200ms", recovery="200ms"))
    proc = run_cli(
        ["run", str(short), "--recover", "--runs-dir", str(tmp_path / "runs2")], state_dir
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "recovered process.pause" in proc.stdout
    assert_nothing_left(service, state_dir)


def test_stop_condition_aborts_after_reverting(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(
        experiment(
            service,
            duration="60s",
            extra="stop_conditions:\n  - {probe: health, failing_for: 500ms}",
        )
    )
    t0 = time.monotonic()
    proc = run_cli(["run", str(f), "--runs-dir", str(tmp_path / "runs")], state_dir)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 30
    assert "stop condition: probe 'health' failing" in proc.stdout
    assert_nothing_left(service, state_dir)


def test_dry_run_prints_the_plan_and_injects_nothing(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(experiment(service, fault="process.kill", duration=None))
    proc = run_cli(["run", str(f), "--dry-run", "--runs-dir", str(tmp_path / "runs")], state_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"process.kill on svc (pid {service.pid})" in proc.stdout
    assert "300ms" in proc.stdout
    time.sleep(0.5)
    assert service.alive()
    assert not (tmp_path / "runs").exists()


def test_rollbacks_always_run(tmp_path: Path, service: Service, state_dir: Path) -> None:
    marker = tmp_path / "rolled-back"
    f = tmp_path / "exp.yaml"
    f.write_text(
        experiment(
            service,
            duration="60s",
            extra=f"rollbacks:\n  - command: [{sys.executable!r}, -c, \"open({str(marker)!r}, 'w')\"]\n"
            "stop_conditions:\n  - {probe: health, failing_for: 300ms}",
        )
    )
    proc = run_cli(["run", str(f), "--runs-dir", str(tmp_path / "runs")], state_dir)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert marker.exists()
    assert_nothing_left(service, state_dir)


def test_target_gone_before_start_is_exit_4_and_clear(tmp_path: Path, state_dir: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(
        "title: t\ntargets: {svc: {process: 'no-such-service-xyzzy'}}\n"
        "method:\n  - {fault: process.kill, target: svc}\n"
    )
    proc = run_cli(["run", str(f), "--runs-dir", str(tmp_path / "runs")], state_dir)
    assert proc.returncode == 4
    assert "no process matches" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_late_injection_still_holds_the_fault_for_its_duration(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    """An injection that starts late (a busy machine, a slow step before it) must not eat into the
    fault's duration: the pause lasts its 500 ms from the recorded inject, not to its planned end."""
    f = tmp_path / "exp.yaml"
    f.write_text(f"""
title: late injection
targets:
  svc: {{pid: {service.pid}}}
probes:
  health: {{http: {{url: "http://127.0.0.1:{service.port}/health"}}, every: 100ms, timeout: 200ms}}
method:
  # a step that takes 0.6 s holds the timeline: the pause starts past its planned end (0.8 s)
  - {{fault: command.run, at: 300ms, argv: [sleep, "0.6"]}}
  - {{fault: process.pause, target: svc, at: 300ms, duration: 500ms}}
recovery: 500ms
hypothesis:
  probe.health.availability.fault: {{min: 1.0}}
""")
    proc = run_cli(["run", str(f), "--runs-dir", str(tmp_path / "runs")], state_dir)
    run_dir = the_run_dir(tmp_path / "runs")
    inject, revert = fault_times(run_dir, "process.pause")
    assert revert - inject >= 0.5, f"the pause held {revert - inject:.3f}s of its 500ms"
    health = samples(run_dir, "health")
    assert any(not s["ok"] for s in health if inject <= s["t"] < revert)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the hypothesis is violated
    assert_nothing_left(service, state_dir)


def test_a_signal_kept_from_start_up_aborts_the_run_before_anything_is_injected(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    """A SIGTERM the CLI's start-up handler could not raise where it landed (inside an import's
    weakref callback) is kept and handed to the runner, which aborts on it as soon as its own
    handlers are in: exit 3, the run's records, no fault, nothing left."""
    from chaoslab.experiment.loader import load_experiment
    from chaoslab.runner.run import RunOptions, run_experiment

    f = tmp_path / "exp.yaml"
    f.write_text(experiment(service, at="300ms"))
    result = run_experiment(load_experiment(f), RunOptions(
        run_root=tmp_path / "runs", reports=("json",), print=lambda _line: None,
        signalled=lambda: signal.SIGTERM))
    assert int(result.exit_code) == 3, result.reason
    assert result.reason == "interrupted by SIGTERM", result.reason
    journal = read_journal(the_run_dir(tmp_path / "runs"))
    assert journal[0]["type"] == "run"
    assert not [r for r in journal if r["type"] == "fault"]
    assert_nothing_left(service, state_dir)
