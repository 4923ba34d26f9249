"""Revert gaps of container faults found by independent checks (issue 24, item 2), each on a
real container and read back from Docker and the disk themselves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .conftest import Lab, chaoslab, docker, inspect

STOP = """
title: stop, then the runner dies
targets:
  box: {{container: {name}}}
method:
  - {{fault: container.stop, target: box, at: 0s, duration: 60s, timeout: {timeout}s}}
"""


def _when(stamp: str) -> float:
    """Docker's RFC 3339 time (nanoseconds) as a Unix time; the zero time is 0."""
    if stamp.startswith("0001-"):
        return 0.0
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0"))


def _ledger_has_containers(state: Path) -> bool:
    for f in (state / "ledger").glob("*/[0-9]*.json"):
        try:
            entry = json.loads(f.read_text())
        except ValueError:
            continue
        if (entry.get("state") or {}).get("containers"):
            return True
    return False


def _stop_signal_sent(name: str, since: float) -> bool:
    """Docker's own record that the stop began: the SIGTERM it sends is a ``kill`` event."""
    out = docker("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                 "--filter", f"container={name}", "--filter", "event=kill",
                 "--format", "{{json .Actor.Attributes}}")
    return any(json.loads(line).get("signal") == "15" for line in out.splitlines() if line)


def test_recover_during_a_stop_leaves_the_container_running(lab: Lab, tmp_path: Path) -> None:
    """SIGKILL the runner while Docker is still stopping the container (its main process ignores
    SIGTERM, so the stop takes the whole timeout), recover at once. Recover must wait for the stop
    to finish before it starts the container: starting a container that is still stopping does
    nothing, and Docker then finishes the stop after recover said "reverted"."""
    timeout = 6
    name, _ = lab.run("stop", "sleep", "600")  # PID 1 without a handler: SIGTERM is ignored
    started = _when(inspect(name)["State"]["StartedAt"])
    exp = tmp_path / "exp.yaml"
    exp.write_text(STOP.format(name=name, timeout=timeout))
    state = tmp_path / "state"
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(state)}
    t0 = time.time() - 1
    runner = subprocess.Popen(
        chaoslab("run", "--runs-dir", str(tmp_path / "runs"), str(exp)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not (_ledger_has_containers(state) and _stop_signal_sent(name, t0)):
            assert time.monotonic() < deadline, "the stop never began"
            assert runner.poll() is None
            time.sleep(0.05)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        assert inspect(name)["State"]["Running"] is True  # still in its stop timeout
        rec = subprocess.run(chaoslab("recover"), capture_output=True, text=True, env=env, timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "reverted" in rec.stdout, rec.stdout
    assert list((state / "ledger").glob("*/[0-9]*.json")) == []
    # The stop did happen and finished, and the start came after it: from Docker itself.
    s = inspect(name)["State"]
    assert s["Running"] is True, s
    finished = _when(s["FinishedAt"])
    assert finished > started, f"recover returned before the stop finished: {s}"
    assert _when(s["StartedAt"]) > finished, s
    # and nothing in flight stops it afterwards (the stop's whole window is over by now)
    while time.time() < finished + timeout + 1:
        time.sleep(0.2)
    assert inspect(name)["State"]["Running"] is True


def _fault(name: str, target: str, run_id: str, **params: Any) -> Any:
    from chaoslab.faults import get
    from chaoslab.targets import TargetSpec, resolve

    cls = get(name)
    return cls(cls.Params.model_validate(params),
               resolve(target, TargetSpec.model_validate({"container": target})), run_id=run_id)


def _fill_percent(where: Path, plus: float) -> float:
    st = os.statvfs(where)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return round(used / (used + st.f_bavail * st.f_frsize) * 100 + plus, 2)


def _fill_bytes(merged: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in merged.glob(".chaoslab-fill*"))


def test_overlapping_disk_fills_keep_the_fill_until_the_last_one_ends(
    lab: Lab, tmp_path: Path, monkeypatch: Any
) -> None:
    """Two disk.fill faults of one run on one container: the first one's revert must not take
    away the fill the second one still holds; the last revert leaves nothing."""
    monkeypatch.setenv("CHAOSLAB_STATE_DIR", str(tmp_path / "state"))
    name, _ = lab.run("fill", "sleep", "600")
    merged = Path(inspect(name)["GraphDriver"]["Data"]["MergedDir"])
    a = _fault("disk.fill", name, lab.prefix, percent=_fill_percent(merged, 0.2))
    b = _fault("disk.fill", name, lab.prefix, percent=_fill_percent(merged, 0.3))
    a.inject()
    b.inject()
    try:
        held = _fill_bytes(merged)
        assert held > 0
        a.revert()
        # b still holds its fill (its goal may need a little more or less than both had)
        assert _fill_bytes(merged) > 0.5 * held, list(merged.glob(".chaoslab-*"))
        b.revert()
    finally:
        a.revert()
        b.revert()
    assert list(merged.glob(".chaoslab-*")) == []
    assert list((tmp_path / "state" / "owners").glob("*.json")) == []


FILLS = """
title: two fills on one container
targets:
  box: {{container: {name}}}
recovery: 0s
method:
  - {{fault: disk.fill, target: box, at: 0s, duration: 1s, percent: {a}}}
  - {{fault: disk.fill, target: box, at: 500ms, duration: 60s, percent: {b}}}
"""


def test_overlapping_fills_in_a_run_then_sigkill_and_recover(lab: Lab, tmp_path: Path) -> None:
    """Through ``chaoslab run``: the first fill ends while the second goes on (its fill stays),
    then the runner dies and recover removes the fill."""
    name, _ = lab.run("fills", "sleep", "600")
    merged = Path(inspect(name)["GraphDriver"]["Data"]["MergedDir"])
    exp = tmp_path / "exp.yaml"
    exp.write_text(FILLS.format(name=name, a=_fill_percent(merged, 0.3), b=_fill_percent(merged, 0.2)))
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    runner = subprocess.Popen(
        chaoslab("run", "--runs-dir", str(tmp_path / "runs"), str(exp)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert runner.stdout is not None
        lines = []
        for line in runner.stdout:
            lines.append(line)
            if " revert " in line:
                break
        assert any(" revert " in x for x in lines), "".join(lines)
        assert _fill_bytes(merged) > 0, "the first fill's revert took the second one's fill"
        runner.kill()
        runner.wait(timeout=10)
        assert _fill_bytes(merged) > 0
        rec = subprocess.run(chaoslab("recover"), capture_output=True, text=True, env=env, timeout=120)
        assert rec.returncode == 0, rec.stdout + rec.stderr
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert list(merged.glob(".chaoslab-*")) == []
    assert list((tmp_path / "state" / "owners").glob("*.json")) == []
