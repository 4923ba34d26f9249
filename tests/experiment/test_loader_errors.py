"""Malformed experiment files: each rejected with the right line and field, exit 2, nothing injected."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.conftest import PY, Service

from chaoslab.errors import InputError
from chaoslab.experiment.loader import load_experiment

GOOD_HEAD = """title: t
targets:
  svc: {pid: 999999}
probes:
  h: {tcp: {port: 1}, every: 1s}
"""

# (name, file text, expected line, expected field, expected words in the message)
CASES: list[tuple[str, str, int, str, str]] = [
    (
        "unknown top-level key with suggestion",
        "titel: x\nmethod: []\n",
        1,
        "titel",
        "did you mean 'title'",
    ),
    (
        "missing title",
        "method:\n  - {fault: process.kill, target: a}\n",
        1,
        "title",
        "required field is missing",
    ),
    (
        "bad duration",
        GOOD_HEAD + "method:\n  - {fault: process.pause, target: svc, duration: 5 parsecs}\n",
        7,
        "method[0].duration",
        "invalid duration '5 parsecs'",
    ),
    (
        "unknown fault",
        GOOD_HEAD + "method:\n  - {fault: process.kil, target: svc}\n",
        7,
        "method[0].fault",
        "did you mean 'process.kill'",
    ),
    (
        "undefined target",
        GOOD_HEAD + "method:\n  - fault: process.kill\n    target: svx\n",
        8,
        "method[0].target",
        "did you mean 'svc'",
    ),
    (
        "unknown fault parameter",
        GOOD_HEAD + "method:\n  - fault: process.terminate\n    target: svc\n    grase: 1s\n",
        9,
        "method[0].grase",
        "did you mean 'grace'",
    ),
    (
        "bad fault parameter value",
        GOOD_HEAD + "method:\n  - fault: process.signal\n    target: svc\n    signal: SIGBOGUS\n",
        9,
        "method[0].signal",
        "unknown signal",
    ),
    (
        "reversible fault without duration",
        GOOD_HEAD + "method:\n  - {fault: process.pause, target: svc}\n",
        7,
        "method[0]",
        "needs a duration",
    ),
    (
        "target with two kinds",
        "title: t\ntargets:\n  a: {pid: 5, process: x}\nmethod:\n  - {fault: process.kill, target: a}\n",
        3,
        "targets.a",
        "exactly one of",
    ),
    (
        "bad blast radius",
        "title: t\ntargets:\n  a:\n    process: x\n    mode: some\nmethod:\n  - {fault: process.kill, target: a}\n",
        5,
        "targets.a.mode",
        "invalid mode",
    ),
    (
        "stop condition on unknown probe",
        GOOD_HEAD
        + "method:\n  - {fault: process.kill, target: svc}\nstop_conditions:\n  - {probe: hh}\n",
        9,
        "stop_conditions[0].probe",
        "did you mean 'h'",
    ),
    (
        "probe with no kind",
        "title: t\nprobes:\n  p: {every: 1s}\nmethod:\n  - {fault: process.kill, target: a}\ntargets: {a: {pid: 9}}\n",
        3,
        "probes.p",
        "exactly one of command, container, http",
    ),
    (
        "unknown probe expectation",
        GOOD_HEAD.replace(
            "{tcp: {port: 1}, every: 1s}", "{http: {url: 'http://x'}, expect: {stauts: 200}}"
        )
        + "method:\n  - {fault: process.kill, target: svc}\n",
        5,
        "probes.h.expect.stauts",
        "did you mean 'status'",
    ),
    ("YAML syntax error", "title: t\nmethod: [\n  {fault: process.kill\n", 4, "", "expected"),
    (
        "undefined variable",
        "title: t\ntargets:\n  a: {pid: '${THE_PID}'}\nmethod:\n  - {fault: process.kill, target: a}\n",
        3,
        "targets.a.pid",
        "variable ${THE_PID} is not defined",
    ),
    ("duplicate key", "title: t\ntitle: u\nmethod: []\n", 2, "title", "duplicate key"),
    (
        "wrong type",
        "title: t\ntags: nope\nmethod:\n  - {fault: process.kill, target: a}\ntargets: {a: {pid: 9}}\n",
        2,
        "tags",
        "valid list",
    ),
    (
        "repeat without every",
        GOOD_HEAD + "method:\n  - {fault: process.kill, target: svc, repeat: 3}\n",
        7,
        "method[0]",
        "repeat needs every",
    ),
    (
        "max_duration shorter than method",
        GOOD_HEAD + "max_duration: 5s\nmethod:\n  - {fault: process.kill, target: svc, at: 10s}\n",
        6,
        "max_duration",
        "shorter than the method",
    ),
    (
        "unknown eBPF tracer",
        GOOD_HEAD
        + "method:\n  - {fault: process.kill, target: svc}\nobserve:\n  ebpf: [retransmits, retransmitz]\n",
        9,
        "observe.ebpf[1]",
        "retransmitz",
    ),
    (
        "fault cannot act on this target kind",
        "title: t\ntargets: {u: {url: 'http://x'}}\nmethod:\n  - {fault: process.kill, target: u}\n",
        4,
        "method[0].target",
        "cannot act on a url target",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "line", "field", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_rejected_with_line_and_field(
    tmp_path: Path, name: str, text: str, line: int, field: str, words: str
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as info:
        load_experiment(f)
    message = str(info.value)
    first = message.splitlines()[0]
    assert first.startswith(f"{f}:{line}:"), message
    if field:
        assert f": {field}: " in first, message
    assert words in message, message
    assert "Traceback" not in message


def test_json_files_have_lines_too(tmp_path: Path) -> None:
    f = tmp_path / "exp.json"
    f.write_text(
        '{\n  "title": "t",\n  "method": [\n    {"fault": "process.kill", "target": "nope"}\n  ]\n}\n'
    )
    with pytest.raises(InputError) as info:
        load_experiment(f)
    assert str(info.value).startswith(f"{f}:4:")
    assert "method[0].target" in str(info.value)


def test_variables_are_substituted(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(
        "title: ${NAME}\ntargets: {a: {pid: '${P:-4242}'}}\nmethod:\n  - {fault: process.kill, target: a}\n"
    )
    loaded = load_experiment(f, {"NAME": "hello"})
    assert loaded.experiment.title == "hello"
    assert loaded.experiment.targets["a"].pid == 4242


def test_cli_exit_2_one_line_per_error_and_nothing_injected(
    tmp_path: Path, service: Service, state_dir: Path
) -> None:
    """A file with a valid kill step but a typo elsewhere: exit 2, and the target is untouched."""
    f = tmp_path / "exp.yaml"
    f.write_text(
        f"title: t\ntargets:\n  svc: {{pid: {service.pid}}}\n"
        "method:\n  - {fault: process.kill, target: svc}\n  - {fault: process.pause, target: svc, durration: 1s}\n"
    )
    for cmd in ("validate", "run"):
        proc = subprocess.run(
            [PY, "-m", "chaoslab", cmd, str(f)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert all(line.startswith(f"{f}:") for line in lines), proc.stderr
        assert any(
            ":6:" in line and "durration" in line and "did you mean 'duration'" in line
            for line in lines
        )
        assert "Traceback" not in proc.stderr
    assert service.alive() and service.status() != "stopped"
    assert not list(state_dir.rglob("*.json")), "nothing may reach the ledger"
