"""clock.skew and clock.drift move a process's own clock (libfaketime) and put it back, on a
normal end and after SIGKILL of the runner + `chaoslab recover`; the machine's clock never moves.
The service reports its own clock (time.time() inside it) to a file; the tests read that file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoslab.system import faketime

from .conftest import CLOCK_REPORTER, Lab, clock_rate, own_skew, wait_for

PY = sys.executable
pytestmark = pytest.mark.skipif(
    not any(Path(c).is_file() for c in faketime._CANDIDATES),
    reason="libfaketime is not installed (scripts/setup.sh installs it)",
)


class Clocked:
    """A Python process whose clock chaoslab can move, writing what its clock says."""

    def __init__(self, tmp: Path, controllable: bool = True) -> None:
        self.report = tmp / "own-clock.json"
        self.offset_file = tmp / "offset"
        env = dict(os.environ)
        if controllable:
            faketime.ensure_file(self.offset_file)
            env.update(faketime.controllable_env(self.offset_file))
        self.proc = subprocess.Popen([PY, "-c", CLOCK_REPORTER, str(self.report)], env=env)
        deadline = time.monotonic() + 30
        while not self.report.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def skew(self) -> float:
        """Its clock minus true time, from a fresh report."""
        return own_skew(self.report, 10)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[Clocked]:
    c = Clocked(tmp_path)
    yield c
    c.stop()


def _experiment(tmp: Path, pid: int, step: str, duration: str = "3s") -> Path:
    f = tmp / "exp.yaml"
    f.write_text(
        f"title: clock\ntargets:\n  svc: {{pid: {pid}}}\nrecovery: 1s\n"
        f"method:\n  - {{{step}, target: svc, at: 1s, duration: {duration}}}\n"
    )
    return f


def _run(tmp: Path, exp: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp / "state")}
    return subprocess.Popen(
        [PY, "-m", "chaoslab", "run", "-q", "--runs-dir", str(tmp / "runs"), str(exp)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_skew_moves_the_service_clock_and_puts_it_back(tmp_path: Path, clocked: Clocked) -> None:
    machine_before = time.time()
    assert abs(clocked.skew()) < 1.0
    run = _run(tmp_path, _experiment(tmp_path, clocked.proc.pid, "fault: clock.skew, offset: -90s"))
    assert wait_for(lambda: clocked.skew() < -80), "the service's clock never moved back 90 s"
    during = clocked.skew()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err + out
    after = clocked.skew()
    print(
        f"\nclock.skew -90s: own clock minus true time before ~0, during {during:.2f}s, after {after:.3f}s"
    )
    assert -91.0 < during < -89.0
    assert abs(after) < 1.0
    assert abs(time.time() - machine_before) < 600, "the machine's clock moved"
    assert faketime.read_offset(clocked.offset_file) == faketime.NO_OFFSET


def test_skew_is_reverted_by_recover_after_sigkill(tmp_path: Path, clocked: Clocked) -> None:
    run = _run(
        tmp_path, _experiment(tmp_path, clocked.proc.pid, "fault: clock.skew, offset: +2h", "60s")
    )
    assert wait_for(lambda: clocked.skew() > 7000), "the skew never arrived"
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)
    assert clocked.skew() > 7000, "still skewed after the runner died (nothing else reverts it)"
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    rec = subprocess.run(
        [PY, "-m", "chaoslab", "recover"], capture_output=True, text=True, timeout=60, env=env
    )
    assert rec.returncode == 0, rec.stderr
    assert abs(clocked.skew()) < 1.0


def test_drift_runs_the_clock_fast_from_the_injection(tmp_path: Path, clocked: Clocked) -> None:
    run = _run(
        tmp_path, _experiment(tmp_path, clocked.proc.pid, "fault: clock.drift, rate: 2.0", "4s")
    )
    assert wait_for(lambda: clocked.skew() > 1.0), "the clock never ran ahead"
    rate = clock_rate(clocked.skew)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err + out
    print(
        f"\nclock.drift rate 2.0: measured {rate:.2f} over 1 s; after revert {clocked.skew():.3f}s"
    )
    assert 1.6 < rate < 2.4, rate
    assert abs(clocked.skew()) < 1.0


def test_a_target_not_started_under_the_preload_is_refused(tmp_path: Path) -> None:
    plain = Clocked(tmp_path, controllable=False)
    try:
        run = _run(
            tmp_path, _experiment(tmp_path, plain.proc.pid, "fault: clock.skew, offset: 30s")
        )
        out, err = run.communicate(timeout=60)
        assert run.returncode == 4, err + out
        assert "not started under libfaketime" in err + out
        assert abs(plain.skew()) < 1.0
    finally:
        plain.stop()


def test_stack_service_with_clock_controllable(tmp_path: Path) -> None:
    from chaoslab.stack import Stack

    (tmp_path / "stack.yaml").write_text(
        "name: clk\nservices:\n  reporter:\n"
        f"    command: [{PY}, -c, {json.dumps(CLOCK_REPORTER)}, {tmp_path / 'own.json'}]\n"
        "    clock: controllable\n"
    )
    stack = Stack.load(str(tmp_path / "stack.yaml"))
    stack.up()
    try:
        pid = int(stack.resolve("reporter")["pid"])
        path = faketime.offset_file_of(pid)
        assert path is not None and path.exists()
        assert faketime.read_offset(path) == faketime.NO_OFFSET
    finally:
        stack.down()


def _steps(pid: int, *steps: str) -> str:
    return f"title: clock\ntargets:\n  svc: {{pid: {pid}}}\nrecovery: 0s\nmethod:\n" + "".join(
        f"  - {{{s}, target: svc}}\n" for s in steps
    )


def test_a_repeated_skew_with_overlapping_windows_comes_back_once(
    tmp_path: Path, clocked: Clocked, lab: Lab
) -> None:
    """Issue 24: ``repeat: 2`` whose windows overlap. The first occurrence's revert must not put
    back true time under the second, and the second's must not put back the first's +2h."""
    before = clocked.offset_file.read_text()
    run = lab.start(
        _steps(clocked.proc.pid, "fault: clock.skew, offset: +2h, at: 0s, duration: 2s, repeat: 2, every: 1s")
    )
    assert run.read_until(" revert "), run.text()
    assert float(faketime.read_offset(clocked.offset_file)) == 7200.0
    assert run.finish() == 0, run.text()
    assert clocked.offset_file.read_text() == before
    assert abs(clocked.skew()) < 1.0
    assert lab.owner_records() == [] and lab.ledger_entries() == []


def test_a_drift_under_a_skew_resumes_where_it_would_be(
    tmp_path: Path, clocked: Clocked, lab: Lab
) -> None:
    """A skew that starts while a drift runs is in force alone (the newest holder); when it ends,
    the drift's offset comes back as if it had run all along, not from zero and not -90 s."""
    run = lab.start(
        _steps(
            clocked.proc.pid,
            "fault: clock.drift, rate: 2.0, at: 0s, duration: 6s",
            "fault: clock.skew, offset: -90s, at: 1s, duration: 1s",
        )
    )
    assert wait_for(lambda: clocked.skew() < -80), "the skew never arrived over the drift"
    assert run.read_until("clock.skew"), run.text()
    assert run.read_until(" revert "), run.text()  # the skew ended
    skew = clocked.skew()
    assert 1.5 < skew < 6.0, skew  # ~2 s of a double-speed clock, give or take a busy machine
    assert run.finish() == 0, run.text()
    assert faketime.read_offset(clocked.offset_file) == faketime.NO_OFFSET
    assert abs(clocked.skew()) < 1.0
