"""Leftover audit through the real CLI: ``chaoslab run`` with kernel faults active, stopped by
SIGINT (it reverts itself) or SIGKILL (then ``chaoslab recover`` reverts from the ledger). After
either, no fault cgroup, nftables table, fill file, hog or moved process remains."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.conftest import Children, audit

from chaoslab.system import cgroups

EXPERIMENT = """
title: kernel faults, interrupted
targets:
  victim: {{pid: {pid}}}
  port: {{address: 127.0.0.1, port: {port}}}
  disk: {{path: "{fs}"}}
method:
  - {{fault: cpu.throttle, target: victim, at: 0s, duration: 60s, cores: 0.2}}
  - {{fault: memory.limit, target: victim, at: 0s, duration: 60s, limit: 256MB}}
  - {{fault: pids.limit, target: victim, at: 0s, duration: 60s, max: 50}}
  - {{fault: process.rlimit, target: victim, at: 0s, duration: 60s, resource: nofile, soft: 64}}
  - {{fault: cpu.stress, target: victim, at: 0s, duration: 60s, workers: 1, load: 10}}
  - {{fault: network.partition, target: port, at: 0s, duration: 60s}}
  - {{fault: disk.fill, target: disk, at: 0s, duration: 60s, percent: 50}}
max_duration: 2m
"""
FAULTS = 7


def chaoslab(*args: str) -> list[str]:
    return [sys.executable, "-m", "chaoslab.cli.main", *args]


def connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except TimeoutError:
        return False


def ledger_entries(state: Path) -> tuple[str, list[dict[str, Any]]]:
    runs = [d for d in (state / "ledger").iterdir() if d.is_dir()]
    assert len(runs) == 1
    entries = []
    for f in runs[0].iterdir():
        try:
            entries.append(json.loads(f.read_text()))
        except (ValueError, IsADirectoryError):
            continue
    return runs[0].name, entries


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_run_leaves_nothing(
    how: str, children: Children, tmpfs: Path, tmp_path: Path
) -> None:
    victim = children.python("import time; time.sleep(120)")
    original = {k: str(v) for k, v in cgroups.cgroups_of(victim.pid).items()}
    nofile = resource.prlimit(victim.pid, resource.RLIMIT_NOFILE)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT.format(pid=victim.pid, port=port, fs=tmpfs))
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    runner = children.popen(
        chaoslab("run", "--runs-dir", str(tmp_path / "runs"), "--report", "json", str(exp)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert runner.stdout is not None
        injected, lines = 0, []
        deadline = time.monotonic() + 60
        while injected < FAULTS and time.monotonic() < deadline:
            line = runner.stdout.readline()
            if not line:
                break
            lines.append(line)
            injected += " inject " in line
        assert injected == FAULTS, "".join(lines)
        time.sleep(0.3)
        run_id, entries = ledger_entries(tmp_path / "state")
        hogs = [e["state"]["hog"]["pid"] for e in entries if "hog" in (e.get("state") or {})]
        assert len(hogs) == 1
        # The faults are really there.
        assert not connects(port)
        assert resource.prlimit(victim.pid, resource.RLIMIT_NOFILE)[0] == 64
        assert any(run_id in str(d) for d in cgroups.cgroups_of(victim.pid).values())
        assert list(tmpfs.glob(".chaoslab-fill*"))

        if how == "sigint":
            runner.send_signal(signal.SIGINT)
            code = runner.wait(timeout=60)
            assert code == 3, "".join(lines) + runner.stdout.read()
        else:
            runner.kill()
            runner.wait(timeout=10)
            assert not connects(port)  # still injected: nobody reverted yet
            rec = subprocess.run(
                chaoslab("recover"), capture_output=True, text=True, timeout=120, env=env
            )
            assert rec.returncode == 0, rec.stdout + rec.stderr
    finally:
        if runner.poll() is None:
            runner.kill()
        server_port_ok = connects(port)
        server.close()

    assert server_port_ok
    audit(run_id)
    assert {k: str(v) for k, v in cgroups.cgroups_of(victim.pid).items()} == original
    assert resource.prlimit(victim.pid, resource.RLIMIT_NOFILE) == nofile
    assert list(tmpfs.iterdir()) == []
    for pid in hogs:
        assert (
            not psutil.pid_exists(int(pid))
            or psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
        )
    assert victim.poll() is None  # the target itself was never harmed
