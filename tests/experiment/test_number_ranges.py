"""Every number in the format has a documented range (issue 13): the JSON Schema carries a minimum
and a maximum for each, the loader refuses what is outside with one line at the value, and the
CLI refuses a start-up SIGINT like a SIGTERM (exit 3)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoslab.errors import InputError
from chaoslab.experiment.loader import load_experiment

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]
HEAD = 'title: t\ntargets:\n  svc: {process: "chaoslab-no-such-process"}\n'
STEP = "method:\n  - {fault: process.pause, target: svc, at: 1s, duration: 2s}\n"


def _numbers_without_range(node: object, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("type") in ("number", "integer"):
            low = "minimum" in node or "exclusiveMinimum" in node
            high = "maximum" in node or "exclusiveMaximum" in node
            if not (low and high):
                yield path
        for k, v in node.items():
            yield from _numbers_without_range(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers_without_range(v, f"{path}[{i}]")


def test_every_number_in_the_schema_has_a_minimum_and_a_maximum() -> None:
    proc = subprocess.run(
        [PY, "-m", "chaoslab", "schema"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    numbers = re.findall(r'"type": "(?:number|integer)"', json.dumps(schema))
    assert len(numbers) > 50, "the schema should describe the fault parameters too"
    assert list(_numbers_without_range(schema)) == []
    # the published copy is the same document
    assert json.loads((ROOT / "docs" / "experiment.schema.json").read_text()) == schema


# (name, text, line, words)
OUT_OF_RANGE = [
    (
        "float beyond 2^53",
        HEAD + "method:\n  - {fault: process.pause, target: svc, at: 1.0e+300, duration: 2s}\n",
        5,
        "out of range",
    ),
    (
        "negative float beyond 2^53",
        HEAD + "probes:\n  p: {tcp: {port: 1}}\nhypothesis:\n"
        "  probe.p.availability: {min: -1.0e+200}\n" + STEP,
        7,
        "out of range",
    ),
    (
        "pid beyond PID_MAX_LIMIT",
        "title: t\ntargets:\n  svc: {pid: 4194305}\n" + STEP,
        3,
        "4194304",
    ),
    (
        "pids.limit beyond PID_MAX_LIMIT",
        HEAD + "method:\n  - {fault: pids.limit, target: svc, max: 4194305}\n",
        5,
        "4194304",
    ),
    (
        "ack status that is no HTTP status",
        HEAD + "load:\n  http: {url: 'http://127.0.0.1:9/', rate: 1/s, "
        "ack: {status: [200, 7000]}}\n" + STEP,
        5,
        "599",
    ),
    (
        "iops beyond 10^9",
        HEAD + "method:\n  - {fault: disk.io_throttle, target: svc, path: /tmp, "
        "read_iops: 10000000000}\n",
        5,
        "1000000000",
    ),
    (
        "port beyond 65535",
        HEAD + "method:\n  - {fault: network.partition, target: svc, ports: [70000]}\n",
        5,
        "65535",
    ),
    (
        "postgres connections beyond its ceiling",
        HEAD + "method:\n  - {fault: postgres.exhaust_connections, "
        "target: svc, dsn: 'postgresql://x@127.0.0.1/x', max: 300000}\n",
        5,
        "262143",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "line", "words"), OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE]
)
def test_a_number_out_of_its_range_is_refused_at_its_line(
    tmp_path: Path, name: str, text: str, line: int, words: str
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as info:
        load_experiment(f)
    lines = str(info.value).splitlines()
    ours = [m for m in lines if words in m]
    assert ours, lines
    assert all(m.startswith(f"{f}:{line}:") for m in ours), lines


def test_the_top_of_each_range_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(
        "title: t\ntargets:\n  svc: {pid: 4194304}\nload:\n  http: {url: 'http://127.0.0.1:9/', rate: 1/s, "
        "ack: {status: [100, 599]}}\nmethod:\n  - {fault: pids.limit, target: svc, max: 4194304, duration: 1s}\n"
        "  - {fault: process.rlimit, target: svc, resource: nofile, soft: 9007199254740992, duration: 1s}\n"
    )
    dumped = json.dumps(load_experiment(f).experiment.model_dump(mode="json"))
    assert "4194304" in dumped and "9007199254740992" in dumped and "599" in dumped


def _catches(pid: int, sig: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (sig - 1)))


def test_sigint_during_start_up_exits_3(tmp_path: Path) -> None:
    """Ctrl-C in the first second is an abort like SIGTERM: exit 3, the target left running."""
    victim = subprocess.Popen(["sleep", "120"])
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"title: t\ntargets:\n  svc: {{pid: {victim.pid}}}\n" + STEP)
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    codes = []
    try:
        for delay in (0.0, 0.1, 0.5):
            proc = subprocess.Popen(
                [PY, "-m", "chaoslab", "run", "--runs-dir", str(tmp_path / "runs"), str(exp)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            deadline = time.monotonic() + 30
            # Python catches SIGINT from its own start; chaoslab's handler goes in with the SIGTERM one
            while (
                not _catches(proc.pid, signal.SIGTERM)
                and time.monotonic() < deadline
                and proc.poll() is None
            ):
                time.sleep(0.002)
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
            codes.append(proc.returncode)
        assert codes == [3, 3, 3], codes
        status = Path(f"/proc/{victim.pid}/status").read_text()
        assert "State:\tS" in status or "State:\tR" in status, "the target was left stopped"
    finally:
        victim.kill()
        victim.wait()


def _mutate(rng: random.Random, text: str) -> str:
    hostile = [
        "&a [*a]",
        "!!float 'abc'",
        "9" * 400,
        ".nan",
        "-.inf",
        "1e309",
        "2026-01-01",
        '"open',
        "\x00",
        "{",
        "]",
        "\t",
        "*nowhere",
        "1.0e+300",
        "70000",
    ]
    for _ in range(rng.randint(1, 3)):
        lines = text.splitlines()
        i = rng.randrange(len(lines))
        op = rng.choice(["value", "insert", "indent", "truncate"])
        if op == "value" and ":" in lines[i]:
            lines[i] = lines[i].split(":", 1)[0] + ": " + rng.choice(hostile)
        elif op == "insert":
            pos = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:pos] + rng.choice(hostile) + lines[i][pos:]
        elif op == "indent":
            lines[i] = " " * rng.randint(0, 5) + lines[i].lstrip()
        else:
            lines = lines[: i + 1]
        text = "\n".join(lines) + "\n"
    return text


def test_mutated_examples_through_validate_and_dry_run(tmp_path: Path) -> None:
    """A fixed-seed sample of mutated example files through the real CLI: `validate` and
    `run --dry-run` agree, never a traceback, an invalid file is one `file:line:` per problem."""
    seeds = sorted(ROOT.glob("examples/**/experiments/*.yaml"))
    assert seeds
    rng = random.Random(13)
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    verdicts = {0: 0, 2: 0}
    for i in range(6):
        src = rng.choice(seeds)
        f = (
            src.parent / f".fuzz-{os.getpid()}-{i}.yaml"
        )  # beside the original: its stack file resolves
        f.write_text(_mutate(rng, src.read_text()))
        try:
            v = subprocess.run(
                [PY, "-m", "chaoslab", "validate", str(f)],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            d = subprocess.run(
                [
                    PY,
                    "-m",
                    "chaoslab",
                    "run",
                    "--dry-run",
                    "--runs-dir",
                    str(tmp_path / "runs"),
                    str(f),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
        finally:
            f.unlink()
        for proc in (v, d):
            assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
        assert v.returncode in (0, 2), v.stderr
        verdicts[v.returncode] += 1
        if v.returncode == 2:
            assert d.returncode == 2, d.stderr
            for out in (v.stderr, d.stderr):
                for line in out.strip().splitlines():
                    assert re.match(re.escape(str(f)) + r":\d+:", line), line
        else:
            # a valid file may still name a target this machine lacks: refused, but never a crash
            assert d.returncode in (0, 2), d.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), (
        "a dry run left a run"
    )
    print(
        f"\nCLI sample: {sum(verdicts.values())} mutated files, {verdicts[2]} refused, {verdicts[0]} valid"
    )
