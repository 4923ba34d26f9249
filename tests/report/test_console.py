"""The plain console reports a probe by episode: a flapping probe is one FAILING line, a count
every 10 s and one "ok again", not a line per sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaoslab.cli.console import PlainConsole
from chaoslab.experiment.loader import load_experiment
from chaoslab.records import Record

EXPERIMENT = """
title: console test
probes:
  health: {http: {url: "http://127.0.0.1:9/health"}, every: 250ms}
method:
  - {fault: command.run, at: 5s, argv: ["true"]}
"""

SLOW = "latency 95ms over 50ms"


def sample(t: float, ok: bool) -> Record:
    return {
        "type": "sample",
        "t": t,
        "probe": "health",
        "ok": ok,
        "value": 200,
        "latency": 0.01,
        "error": None if ok else SLOW,
    }  # type: ignore[return-value]


def lines_for(tmp_path: Path, capsys: pytest.CaptureFixture[str], oks: list[bool]) -> list[str]:
    f = tmp_path / "exp.yaml"
    f.write_text(EXPERIMENT)
    console = PlainConsole(load_experiment(f).experiment)
    for k, ok in enumerate(oks):
        console.on_record(sample(k * 0.25, ok))
    return [ln.split("] ", 1)[1] for ln in capsys.readouterr().out.splitlines()]


def test_a_flapping_probe_is_one_failing_line_a_count_every_10s_and_one_ok_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 5 s ok, then 30 s of a throttle where every other answer misses its latency bound, then ok
    oks = [True] * 20 + [k % 2 == 1 for k in range(120)] + [True] * 20
    lines = lines_for(tmp_path, capsys, oks)
    assert lines == [
        "probe health ok",
        f"probe health FAILING ({SLOW})",
        f"probe health still failing: 21 of 41 samples failed in the last 10s (last: {SLOW})",
        f"probe health still failing: 20 of 40 samples failed in the last 10s (last: {SLOW})",
        f"probe health still failing: 19 of 40 samples failed in the last 10s (last: {SLOW})",
        "probe health ok again since 34.75s (60 of 119 samples failed in 29.8s)",
    ]


def test_a_probe_that_fails_once_and_recovers_is_two_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = lines_for(tmp_path, capsys, [True] * 4 + [False] * 3 + [True] * 8 + [False])
    assert lines == [
        "probe health ok",
        f"probe health FAILING ({SLOW})",
        "probe health ok again since 1.75s (3 of 3 samples failed in 0.8s)",
        f"probe health FAILING ({SLOW})",
    ]
