"""clock.skew and clock.drift on a container target (issue 17): a Python service in
chaoslab/host:1 (the host's /usr bind-mounted) started under libfaketime's preload, its offset
file on a bind-mounted host directory. The service writes its own time.time() to that directory;
the tests read it before, during and after, and after SIGKILL of the runner + recover. Docker
network: none."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaoslab.errors import TargetError
from chaoslab.system import faketime

from .conftest import CLOCK_REPORTER, Lab, clock_rate, own_skew, wait_for

PY = sys.executable
LIB = next((c for c in faketime._CANDIDATES if Path(c).is_file()), None)
pytestmark = [pytest.mark.docker]


def _docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


class Boxed:
    """A container whose service reports its own clock into ``dir/own.json``."""

    def __init__(self, tmp: Path, *, preload: bool = True) -> None:
        self.dir = tmp / "clockdir"
        self.dir.mkdir()
        self.report = self.dir / "own.json"
        self.name = "clk" + uuid.uuid4().hex[:10]
        env = (
            [
                "-e",
                f"LD_PRELOAD={LIB}",
                "-e",
                "FAKETIME_TIMESTAMP_FILE=/clock/offset",
                "-e",
                "FAKETIME_NO_CACHE=1",
            ]
            if preload
            else []
        )
        _docker(
            "run",
            "-d",
            "--name",
            self.name,
            "--network",
            "none",
            "-v",
            "/usr:/usr:ro",
            "-v",
            f"{self.dir}:/clock",
            *env,
            "chaoslab/host:1",
            "python3",
            "-c",
            CLOCK_REPORTER,
            "/clock/own.json",
        )
        deadline = time.monotonic() + 60
        while not self.report.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.report.exists(), _docker("logs", self.name, check=False)

    def skew(self) -> float:
        """The service's clock minus true time, from a fresh report."""
        return own_skew(self.report)

    def remove(self) -> None:
        _docker("rm", "-f", self.name, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def docker_ok() -> None:
    if os.geteuid() != 0 or LIB is None or shutil.which("docker") is None:
        pytest.skip("needs root, docker and libfaketime")
    if (
        subprocess.run(
            ["docker", "image", "inspect", "chaoslab/host:1"], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("chaoslab/host:1 is not built (scripts/images.sh)")


@pytest.fixture
def boxed(tmp_path: Path, docker_ok: None) -> Iterator[Boxed]:
    b = Boxed(tmp_path)
    yield b
    b.remove()


def _run(tmp: Path, name: str, step: str, duration: str) -> subprocess.Popen[str]:
    exp = tmp / "exp.yaml"
    exp.write_text(
        f"title: container clock\ntargets:\n  box: {{container: {name}}}\nrecovery: 1s\n"
        f"method:\n  - {{{step}, target: box, at: 1s, duration: {duration}}}\n"
    )
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp / "state")}
    return subprocess.Popen(
        [PY, "-m", "chaoslab", "run", "-q", "--runs-dir", str(tmp / "runs"), str(exp)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_skew_and_drift_move_the_container_clock_and_put_it_back(
    tmp_path: Path, boxed: Boxed
) -> None:
    before = boxed.skew()
    assert abs(before) < 1.0
    run = _run(tmp_path, boxed.name, "fault: clock.skew, offset: -90s", "3s")
    assert wait_for(lambda: boxed.skew() < -80), "the container's clock never moved back 90 s"
    during = boxed.skew()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err + out
    after = boxed.skew()
    print(
        f"\ncontainer clock.skew -90s: before {before:.3f}s, during {during:.2f}s, after {after:.3f}s"
    )
    assert -91.0 < during < -89.0
    assert abs(after) < 1.0
    assert faketime.read_offset(boxed.dir / "offset") == faketime.NO_OFFSET

    run = _run(tmp_path, boxed.name, "fault: clock.drift, rate: 2.0", "4s")
    assert wait_for(lambda: boxed.skew() > 1.0), "the container's clock never ran ahead"
    rate = clock_rate(boxed.skew)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err + out
    print(f"container clock.drift 2.0: measured {rate:.2f}; after {boxed.skew():.3f}s")
    assert 1.5 < rate < 2.5, rate
    assert abs(boxed.skew()) < 1.0


def test_container_skew_is_reverted_by_recover_after_sigkill(tmp_path: Path, boxed: Boxed) -> None:
    run = _run(tmp_path, boxed.name, "fault: clock.skew, offset: +2h", "60s")
    assert wait_for(lambda: boxed.skew() > 7000), "the skew never arrived"
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)
    killed = boxed.skew()
    assert killed > 7000, "still skewed after the runner died (nothing else reverts it)"
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    rec = subprocess.run(
        [PY, "-m", "chaoslab", "recover"], capture_output=True, text=True, timeout=120, env=env
    )
    assert rec.returncode == 0, rec.stderr
    after = boxed.skew()
    print(f"\ncontainer clock.skew +2h: after SIGKILL {killed:.1f}s, after recover {after:.3f}s")
    assert abs(after) < 1.0


def test_a_container_not_started_under_the_preload_is_refused(
    tmp_path: Path, docker_ok: None
) -> None:
    plain = Boxed(tmp_path, preload=False)
    try:
        run = _run(tmp_path, plain.name, "fault: clock.skew, offset: 30s", "2s")
        out, err = run.communicate(timeout=120)
        assert run.returncode == 4, err + out
        assert f"container {plain.name} was not started under libfaketime" in err + out
        assert abs(plain.skew()) < 1.0
        assert not (plain.dir / "offset").exists()
    finally:
        plain.remove()


def _attrs(env: list[str], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Name": "/box", "Config": {"Env": env}, "State": {"Pid": 0}, "Mounts": mounts}


GOOD_ENV = [
    "LD_PRELOAD=/faketime/libfaketime.so.1",
    "FAKETIME_TIMESTAMP_FILE=/clock/sub/offset",
    "FAKETIME_NO_CACHE=1",
]


def test_the_offset_file_is_found_through_the_innermost_bind_mount() -> None:
    mounts = [
        {"Type": "bind", "Source": "/host/a", "Destination": "/clock", "RW": True},
        {"Type": "bind", "Source": "/host/b", "Destination": "/clock/sub", "RW": True},
        {"Type": "volume", "Source": "/var/lib/docker/x", "Destination": "/", "RW": True},
    ]
    assert faketime.container_offset_file(_attrs(GOOD_ENV, mounts), "t") == Path("/host/b/offset")


@pytest.mark.parametrize(
    ("env", "mounts", "says"),
    [
        (GOOD_ENV[1:], [], "was not started under libfaketime"),
        ([GOOD_ENV[0], GOOD_ENV[2]], [], "has no absolute FAKETIME_TIMESTAMP_FILE"),
        (GOOD_ENV[:2], [], "lacks FAKETIME_NO_CACHE=1"),
        (
            GOOD_ENV,
            [{"Type": "volume", "Source": "/v", "Destination": "/clock", "RW": True}],
            "not on a bind-mounted",
        ),
        (
            GOOD_ENV,
            [{"Type": "bind", "Source": "/h", "Destination": "/clock", "RW": False}],
            "mounted read-only",
        ),
    ],
)
def test_what_is_missing_is_said(env: list[str], mounts: list[dict[str, Any]], says: str) -> None:
    with pytest.raises(TargetError, match=says):
        faketime.container_offset_file(_attrs(env, mounts), "t")


OVERLAP = """
title: two skews on one container
targets:
  box: {{container: {name}}}
recovery: 0s
method:
  - {{fault: clock.skew, target: box, at: 0s, duration: 1s, offset: +2h}}
  - {{fault: clock.skew, target: box, at: 500ms, duration: 4s, offset: -90s}}
"""


def test_overlapping_skews_stack_and_the_original_comes_back_once(
    tmp_path: Path, boxed: Boxed, lab: Lab
) -> None:
    """Issue 24, item 2: the offset file has one owner of its original. The first skew (+2h)
    ends while the second (-90s) goes on: the second's offset stays in force; after both, the
    original comes back, and here the original is *no file* (the container was started with an
    offset file that did not exist yet), so the file is gone again, not left holding +0."""
    offset = boxed.dir / "offset"
    assert not offset.exists()
    run = lab.start(OVERLAP.format(name=boxed.name))
    assert run.read_until(" revert "), run.text()  # the +2h skew ended, the -90s one goes on
    assert float(faketime.read_offset(offset)) == -90.0, offset.read_text()
    assert -91.0 < boxed.skew() < -89.0
    assert run.finish() == 0, run.text()
    assert not offset.exists(), f"left behind: {offset.read_text()!r}"
    assert abs(boxed.skew()) < 1.0
    assert lab.owner_records() == [] and lab.ledger_entries() == []
    rec = lab.recover()
    assert rec.returncode == 0 and "reverted" not in rec.stdout, rec.stdout + rec.stderr


def test_a_skew_on_an_existing_offset_file_puts_its_text_back(
    tmp_path: Path, boxed: Boxed, lab: Lab
) -> None:
    """The original is the file as it was, byte for byte (an offset set by someone else)."""
    offset = boxed.dir / "offset"
    offset.write_text("+5\n")
    assert wait_for(lambda: 4.0 < boxed.skew() < 6.0)
    run = lab.start(OVERLAP.format(name=boxed.name))
    assert run.finish() == 0, run.text()
    assert offset.read_text() == "+5\n"
    assert 4.0 < boxed.skew() < 6.0


def test_overlapping_skews_after_sigkill_are_undone_by_recover(
    tmp_path: Path, boxed: Boxed, lab: Lab
) -> None:
    """Both skews active when the runner dies: recover releases both holders, in whatever order
    it finds them, and the container is left as it was (no offset file)."""
    offset = boxed.dir / "offset"
    run = lab.start(
        OVERLAP.format(name=boxed.name).replace("duration: 1s", "duration: 60s").replace(
            "duration: 4s", "duration: 60s"
        )
    )
    assert wait_for(lambda: offset.exists() and float(faketime.read_offset(offset)) == -90.0)
    assert len(lab.owner_records()) == 1
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait(timeout=30)
    assert float(faketime.read_offset(offset)) == -90.0  # nobody reverted yet
    rec = lab.recover()
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert not offset.exists()
    assert abs(boxed.skew()) < 1.0
    assert lab.owner_records() == [] and lab.ledger_entries() == []
