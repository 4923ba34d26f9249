"""Hostile experiment files (issue 13): each is refused with one line naming file, line and field,
exit 2, and nothing run; no traceback, no hang, no non-finite number reaching the runner."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaoslab.errors import InputError
from chaoslab.experiment.loader import load_experiment
from chaoslab.units import MAX_DURATION, format_duration, parse_duration, parse_rate, parse_size

PY = sys.executable

HEAD = 'title: t\ntargets:\n  svc: {process: "chaoslab-no-such-process"}\n'
STEP = "method:\n  - {fault: process.pause, target: svc, at: 1s, duration: 2s}\n"


def _laughs(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return HEAD + "\n".join(lines) + "\n" + STEP


def _quote_at(line: int) -> str:
    body = (
        ["title: t"] + [f"# filler {i}" for i in range(line - 2)] + ['description: "never closed']
    )
    return "\n".join(body + [f"x{i}: 1" for i in range(30)]) + "\n"


# (name, text, expected line, words the message must contain)
CASES: list[tuple[str, str | bytes, int, str]] = [
    (
        "self-referencing alias",
        "title: &a [*a]\nmethod: []\n",
        1,
        "refers to the value that contains it",
    ),
    (
        "duplicate key beside a merge",
        "base: &b {x: 1}\nc: {<<: *b, y: 1, y: 2}\ntitle: t\n" + STEP,
        2,
        "duplicate key 'y'",
    ),
    (
        "!!float of text",
        HEAD
        + "method:\n  - {fault: process.pause, target: svc, at: !!float 'abc', duration: 2s}\n",
        5,
        "invalid !!float value 'abc'",
    ),
    (
        "400-digit duration",
        HEAD + "method:\n  - {fault: process.pause, target: svc, duration: " + "9" * 400 + "}\n",
        5,
        "out of range",
    ),
    ("nan max_duration", HEAD + "max_duration: .nan\n" + STEP, 4, "not a finite number"),
    (
        "nan at",
        HEAD + "method:\n  - {fault: process.pause, target: svc, at: .nan, duration: 2s}\n",
        5,
        "finite",
    ),
    (
        "nan duration",
        HEAD + "method:\n  - {fault: process.pause, target: svc, duration: .nan}\n",
        5,
        "finite",
    ),
    ("nan every", HEAD + "probes:\n  p: {tcp: {port: 1}, every: .nan}\n" + STEP, 5, "finite"),
    (
        "nan failing_for",
        HEAD
        + "probes:\n  p: {tcp: {port: 1}}\nstop_conditions:\n  - {probe: p, failing_for: .nan}\n"
        + STEP,
        7,
        "finite",
    ),
    (
        "nan rate",
        HEAD + "load:\n  http: {url: 'http://127.0.0.1:9/', rate: .nan}\n" + STEP,
        5,
        "finite",
    ),
    (
        "1e309 is infinity",
        HEAD + "method:\n  - {fault: process.pause, target: svc, at: 1e309, duration: 2s}\n",
        5,
        "out of range",
    ),
    (
        "1.0e309 is infinity",
        HEAD + "method:\n  - {fault: process.pause, target: svc, at: 1.0e+309, duration: 2s}\n",
        5,
        "finite",
    ),
    (
        "-.inf bound",
        HEAD
        + "probes:\n  p: {tcp: {port: 1}}\nhypothesis:\n  probe.p.availability: {min: -.inf}\n"
        + STEP,
        7,
        "finite",
    ),
    (
        "duration past the maximum",
        HEAD + "method:\n  - {fault: process.pause, target: svc, duration: 8d}\n",
        5,
        "invalid duration",
    ),
    (
        "duration of 30 days",
        HEAD + "method:\n  - {fault: process.pause, target: svc, duration: 720h}\n",
        5,
        "at most 7 days",
    ),
    (
        "string inf duration",
        HEAD + "method:\n  - {fault: process.pause, target: svc, duration: 'inf'}\n",
        5,
        "out of range",
    ),
    ("billion laughs", _laughs(9), 4, "expands to more than"),
    ("unclosed quote opened on line 46", _quote_at(46), 46, "quoted scalar"),
    ("NUL byte", b"title: t\nmethod:\n  - {fault: process.pause,\x00 target: svc}\n", 3, "#x0000"),
    (
        "invalid UTF-8",
        b"title: t\nmethod:\n  - {fault: process.pause, target: \xff svc}\n",
        3,
        "not UTF-8",
    ),
    (
        "lost_writes bounded by a duration",
        HEAD + "verify: {sql: {dsn: 'postgresql://x', query: 'select 1'}}\n"
        "load:\n  http: {url: 'http://127.0.0.1:9/', rate: 1/s}\nhypothesis:\n  lost_writes: {max: ''}\n"
        + STEP,
        8,
        "is a count, not a time",
    ),
    (
        "binary value",
        HEAD + "description: !!binary aGVsbG8=\n" + STEP,
        4,
        "!!binary values are not supported",
    ),
    ("deep nesting", HEAD + "description: " + "[" * 200 + "]" * 200 + "\n" + STEP, 4, "nest"),
]


@pytest.mark.parametrize(("name", "text", "line", "words"), CASES, ids=[c[0] for c in CASES])
def test_hostile_file_is_one_clear_line(
    tmp_path: Path, name: str, text: str | bytes, line: int, words: str
) -> None:
    f = tmp_path / "exp.yaml"
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    # quickly: in CPU (an expansion or a backtracking parser burns it; a busy machine's wait for a
    # core does not), and in wall time within a sanity bound (no hang)
    t0, c0 = time.monotonic(), time.process_time()
    with pytest.raises(InputError) as info:
        load_experiment(f)
    assert time.process_time() - c0 < 2.0, "the loader must refuse quickly"
    assert time.monotonic() - t0 < 30.0, "the loader must not hang"
    message = str(info.value)
    assert message.startswith(f"{f}:{line}:"), message
    assert words in message, message
    for repr_leak in ("datetime.", "b''", "None", "Traceback"):
        assert repr_leak not in message, message


def test_a_date_in_a_load_body_is_the_text_the_user_wrote(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(
        HEAD + "load:\n  http: {url: 'http://127.0.0.1:9/', rate: 1/s, method: POST, "
        "body: {id: 2026-01-01, at: 2026-01-01T10:00:00Z}}\n" + STEP
    )
    loaded = load_experiment(f)
    assert loaded.experiment.load is not None
    http = loaded.experiment.load.http
    assert http is not None
    body = http.body
    assert body == {"id": "2026-01-01", "at": "2026-01-01T10:00:00Z"}
    assert json.dumps(body)  # what the journal and the request do with it


def test_a_key_written_beside_a_merge_overrides_the_merged_one(tmp_path: Path) -> None:
    from chaoslab.source import load_document

    f = tmp_path / "doc.yaml"
    f.write_text("base: &b {x: 1, y: 2}\nchild: {<<: *b, x: 3}\n")
    assert load_document(f).data["child"] == {"x": 3, "y": 2}


def test_every_unit_is_finite_and_bounded() -> None:
    for bad in (math.nan, math.inf, -math.inf, "nan", "inf", "1e400", 10**400, MAX_DURATION + 1):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_duration("7d" if False else MAX_DURATION) == MAX_DURATION
    for bad in (math.nan, math.inf, 10**400, "2000000/s"):
        with pytest.raises(ValueError):
            parse_rate(bad)
    for bad in (math.nan, math.inf, 10**400, "2PiB", "9" * 400):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert format_duration(math.nan) == "n/a"


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CHAOSLAB_STATE_DIR": os.environ.get("CHAOSLAB_STATE_DIR", "/tmp/chaoslab-hostile-state"),
    }
    return subprocess.run(
        [PY, "-m", "chaoslab", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.parametrize(
    "name",
    [
        "self-referencing alias",
        "billion laughs",
        "nan at",
        "400-digit duration",
        "NUL byte",
        "unclosed quote opened on line 46",
    ],
)
def test_cli_refuses_with_exit_2_and_no_traceback(tmp_path: Path, name: str) -> None:
    text, line = next((c[1], c[2]) for c in CASES if c[0] == name)
    f = tmp_path / "exp.yaml"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    for args in (
        ["validate", str(f)],
        ["run", "--dry-run", "--runs-dir", str(tmp_path / "runs"), str(f)],
    ):
        proc = _cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{f}:{line}:"), proc.stderr
    assert not (tmp_path / "runs").exists(), "nothing may run for an invalid file"


def test_dry_run_does_not_bring_the_stack_up(tmp_path: Path) -> None:
    """docs/runs.md: a dry run touches nothing. The stack here would start a process we can see."""
    marker = f"chaoslab-dry-run-marker-{os.getpid()}"
    (tmp_path / "stack.yaml").write_text(
        "name: dry\nservices:\n  sleeper:\n    command: [sleep, '300']\n"
        f"    env: {{MARKER: {marker}}}\n"
    )
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "title: dry\nstack: stack.yaml\ntargets:\n  s: {service: sleeper}\n"
        "method:\n  - {fault: process.pause, target: s, at: 1s, duration: 1s}\n"
    )
    proc = _cli("run", "--dry-run", "--runs-dir", str(tmp_path / "runs"), str(exp))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "process.pause" in proc.stdout + proc.stderr
    assert not (tmp_path / ".chaoslab").exists(), "the dry run wrote stack state"
    out = subprocess.run(
        ["pgrep", "-f", "chaoslab.stack.supervisor.*" + str(tmp_path)], capture_output=True
    )
    assert out.returncode == 1, "a supervisor was started for the dry run"


def test_sigterm_during_start_up_exits_3(tmp_path: Path) -> None:
    """A signal before the runner's own handlers are in place is an abort (3), not a death by signal."""
    victim = subprocess.Popen(["sleep", "120"])
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"title: t\ntargets:\n  svc: {{pid: {victim.pid}}}\n" + STEP)
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    codes = []
    for delay in (0.0, 0.05, 0.2):
        proc = subprocess.Popen(
            [PY, "-m", "chaoslab", "run", "--runs-dir", str(tmp_path / "runs"), str(exp)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        # from the moment the process catches SIGTERM (the kernel's own record of its handlers);
        # before that the interpreter is still starting and no program can answer a signal
        deadline = time.monotonic() + 30
        while (
            not _catches(proc.pid, signal.SIGTERM)
            and time.monotonic() < deadline
            and proc.poll() is None
        ):
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        codes.append(proc.returncode)
        if delay == 0.0:
            # the handler is there from the start of `run`, long before the runner's own
            assert "during start-up" in err, err
    # each signal landed somewhere in start-up or in the run: either way it is an abort
    assert all(c == 3 for c in codes), codes
    status = Path(f"/proc/{victim.pid}/status").read_text()
    victim.kill()
    victim.wait()
    assert "State:\tS" in status or "State:\tR" in status, "the target was left stopped"


def _catches(pid: int, sig: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (sig - 1)))
