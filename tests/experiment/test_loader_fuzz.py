"""Fuzzing the experiment loader (issue 13): mutated and generated files never give a traceback,
never hang (2 s a file), and every refusal is one `file:line:...` line. Runs inside `make test`
with a fixed seed, a bounded number of cases (CHAOSLAB_FUZZ_EXAMPLES, 600 by default: 900 files,
about 7 s here) and a wall-clock budget (CHAOSLAB_FUZZ_SECONDS, 10 s by default, so that a busy
machine shortens the fuzzing rather than the test suite's patience); for the long run set e.g.
CHAOSLAB_FUZZ_EXAMPLES=2000 CHAOSLAB_FUZZ_SECONDS=300 (and CHAOSLAB_FUZZ_RANDOM=1 for a fresh seed)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaoslab.errors import InputError
from chaoslab.experiment.loader import load_experiment
from chaoslab.runner.plan import describe_plan, plan

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted(
    p.read_text()
    for p in [*ROOT.glob("examples/**/experiments/*.yaml"), *ROOT.glob("examples/basic/*.yaml")]
)
HOSTILE = [
    "title: &a [*a]\n",
    "!!float 'abc'",
    "9" * 400,
    ".nan",
    "-.inf",
    "1.0e+309",
    "1e309",
    "2026-01-01",
    '"unclosed',
    "'unclosed",
    "&x [*x]",
    "<<: *nowhere",
    "!!binary aGVsbG8=",
    "!!python/object:os.system",
    "\x00",
    "{",
    "[",
    "]",
    "}",
    ":",
    "- ",
    "  ",
    "\t",
    "*",
    "&",
    "!",
    "%YAML 1.1",
    "---",
    "...",
    "#",
    "${UNDEFINED_CHAOSLAB_VAR}",
    "0x7fffffffffffffffff",
    "-1s",
    "0",
    "''",
    "~",
    "null",
    "true",
    "1e-400",
]
EXAMPLES = int(os.environ.get("CHAOSLAB_FUZZ_EXAMPLES", "600"))
RANDOM = os.environ.get("CHAOSLAB_FUZZ_RANDOM") == "1"
BUDGET = float(os.environ.get("CHAOSLAB_FUZZ_SECONDS", "10"))
ran = {"cases": 0, "refused": 0, "accepted": 0, "skipped": 0}
started: list[float] = []


class Hang(Exception):
    pass


@contextmanager
def at_most(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"the loader took more than {seconds}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(["insert", "delete", "replace_value", "dup_line", "indent", "truncate"])
        )
        pos = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:pos] + draw(st.sampled_from(HOSTILE) | st.text(max_size=6)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)) :]
        elif op == "replace_value":
            lines = text.splitlines()
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            if lines and ":" in lines[i]:
                key = lines[i].split(":", 1)[0]
                lines[i] = f"{key}: {draw(st.sampled_from(HOSTILE))}"
            text = "\n".join(lines) + "\n"
        elif op == "dup_line":
            lines = text.splitlines()
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines.insert(i, lines[i])
            text = "\n".join(lines) + "\n"
        elif op == "indent":
            lines = text.splitlines()
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines[i] = " " * draw(st.integers(0, 5)) + lines[i].lstrip()
            text = "\n".join(lines) + "\n"
        else:
            text = text[:pos]
    return text


def _check_one(path: Path, text: str) -> None:
    if not started:
        started.append(time.monotonic())
    if time.monotonic() - started[0] > BUDGET:
        ran["skipped"] += 1
        return
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    ran["cases"] += 1
    try:
        with at_most(2.0):
            loaded = load_experiment(path)
            exp = loaded.experiment
            describe_plan(
                exp, plan(exp), {}
            )  # what --dry-run prints: no crash on any accepted value
    except InputError as exc:
        ran["refused"] += 1
        for line in str(exc).splitlines():
            assert line.startswith(f"{path}:"), line
            assert line[len(str(path)) + 1 :].split(":", 1)[0].isdigit(), f"no line number: {line}"
        return
    ran["accepted"] += 1
    for value in _numbers(exp.model_dump(mode="python")):
        assert math.isfinite(value), f"a non-finite number was accepted: {value}"


def _numbers(data: object) -> Iterator[float]:
    if isinstance(data, bool):
        return
    if isinstance(data, int | float):
        yield float(data)
    elif isinstance(data, dict):
        for v in data.values():
            yield from _numbers(v)
    elif isinstance(data, list | tuple):
        for v in data:
            yield from _numbers(v)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mutated())
def test_mutated_experiment_files(tmp_path: Path, text: str) -> None:
    _check_one(tmp_path / "fuzz.yaml", text)


@settings(
    max_examples=EXAMPLES // 2,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    parts=st.lists(st.sampled_from(list("ab:-[]{}&*!'\"#\n .,0123456789") + HOSTILE), max_size=60)
)
def test_generated_yaml_fragments(tmp_path: Path, parts: list[str]) -> None:
    _check_one(tmp_path / "fuzz.yaml", "".join(parts))


def test_report_fuzz_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last in this module: says how many files the fuzzing above tried."""
    with capsys.disabled():
        print(
            f"\nloader fuzz: {ran['cases']} files, {ran['refused']} refused, {ran['accepted']} accepted"
            f" ({ran['skipped']} drawn after the {BUDGET:g} s budget, not checked)"
        )
    assert ran["cases"] == 0 or ran["refused"] > 0


def test_sample_through_the_real_cli(tmp_path: Path) -> None:
    """A few invalid files through `chaoslab validate`: exit 2, one line each, no traceback."""
    samples = [
        "title: &a [*a]\n",
        SEEDS[0].replace("title:", "title: !!float 'x'\nx:", 1),
        SEEDS[0] + "max_duration: .nan\n",
        SEEDS[0][: len(SEEDS[0]) // 2] + '"',
    ]
    for i, text in enumerate(samples):
        f = tmp_path / f"s{i}.yaml"
        f.write_text(text)
        proc = subprocess.run(
            [sys.executable, "-m", "chaoslab", "validate", str(f)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (text, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert all(line.startswith(f"{f}:") for line in proc.stderr.strip().splitlines()), (
            proc.stderr
        )
