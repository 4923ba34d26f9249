"""The runner on stack services: the service's own cgroup is frozen, restarts come from its policy
and the stack's events land in the run's journal."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import (
    PY,
    ROOT,
    child_env,
    free_port,
    kill_mid_fault,
    ledger_entries,
    the_run_dir,
)

from chaoslab.journal import read_journal
from chaoslab.stack import Stack

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="stack services get cgroups only as root")


@pytest.fixture
def stack_file(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    f = tmp_path / "stack.yaml"
    f.write_text(f"""
name: coretest
services:
  svc:
    command: [{PY!r}, {str(ROOT / "examples" / "basic" / "service.py")!r}, --port, "{port}"]
    ports: [{port}]
    healthcheck: {{http: "http://127.0.0.1:{port}/health", interval: 200ms, start_interval: 50ms}}
    restart: {{policy: always, backoff: 100ms}}
""")
    try:
        yield f, port
    finally:
        Stack.load(f).down(purge=True)


def test_pause_freezes_the_service_cgroup_and_kill_is_restarted_by_policy(
    tmp_path: Path, stack_file: tuple[Path, int], state_dir: Path
) -> None:
    f, port = stack_file
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""
title: stack service faults
stack: {f}
targets:
  svc: {{service: svc}}
probes:
  health: {{http: {{url: "http://127.0.0.1:{port}/health"}}, every: 100ms, timeout: 200ms}}
method:
  - {{fault: process.pause, target: svc, at: 500ms, duration: 1s}}
  - {{fault: process.kill, target: svc, at: 2s}}
recovery: 6s
hypothesis:
  probe.health.availability.baseline: {{min: 1.0}}
  # healthy again within 3 s of the kill: the restarted Python service took up to 1.1 s to
  # start with the machine busy (load average 12)
  probe.health.availability.recovery: {{min: 0.5}}
""")
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [PY, "-m", "chaoslab", "run", str(exp), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(state_dir),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    journal = read_journal(the_run_dir(runs))
    pause = next(
        r
        for r in journal
        if r["type"] == "fault" and r["action"] == "inject" and r["fault"] == "process.pause"
    )
    assert "freezer" in pause["state"], "a service with its own cgroup is paused with the freezer"
    kill_t = next(r["t"] for r in journal if r["type"] == "fault" and r["fault"] == "process.kill")
    stack_events = [r for r in journal if r["type"] == "event" and r.get("source") == "stack"]
    restarts = [e for e in stack_events if e["kind"] == "restart" and e["t"] > kill_t]
    assert restarts, f"the restart by policy must be in the journal: {stack_events}"
    # the pause as it was: from its recorded inject to its revert (a busy machine moves both away
    # from the asked 0.5 s and 1.5 s); the thaw comes before the revert's record (the ledger is
    # written in between), and a sample may be answered after it within its 200 ms timeout:
    # the window ends 0.5 s before the record
    frozen = (
        pause["t"],
        next(
            r["t"]
            for r in journal
            if r["type"] == "fault" and r["action"] == "revert" and r["fault"] == "process.pause"
        ),
    )
    health = [r for r in journal if r["type"] == "sample" and r["probe"] == "health"]
    assert any(not s["ok"] for s in health if frozen[0] <= s["t"] < frozen[1] - 0.5), (
        frozen,
        health,
    )
    assert health[-1]["ok"], "the restarted service must be healthy again"
    assert ledger_entries(state_dir) == []
    summary = json.loads((the_run_dir(runs) / "summary.json").read_text())
    assert summary["outcome"] == "held"
    findings = summary["analysis"]["findings"]
    assert any(
        f.startswith("svc was restarted by its policy") and "healthy again" in f for f in findings
    ), findings
    assert "## Stack events" in (the_run_dir(runs) / "report.md").read_text()
    ps = Stack.load(f).ps()
    assert ps, "the stack stays up after the run"


def test_sigkill_during_a_freezer_pause_then_recover_thaws_the_service(
    tmp_path: Path, stack_file: tuple[Path, int], state_dir: Path
) -> None:
    from chaoslab.system.cgroups import Group

    f, _ = stack_file
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""
title: frozen then killed runner
stack: {f}
targets:
  svc: {{service: svc}}
method:
  - {{fault: process.pause, target: svc, at: 200ms, duration: 60s}}
""")
    kill_mid_fault(exp, tmp_path / "runs", state_dir)
    record = json.loads(ledger_entries(state_dir)[0].read_text())
    dirs = {k: Path(v) for k, v in record["state"]["freezer"].items()}
    assert Group(dirs=dirs).frozen()
    rec = subprocess.run(
        [PY, "-m", "chaoslab", "recover"],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(state_dir),
    )
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert not Group(dirs=dirs).frozen()
    assert ledger_entries(state_dir) == []


def test_a_stack_service_is_partitioned_by_name(tmp_path: Path, state_dir: Path) -> None:
    """`{service: cache}` resolves to the service's bare address and port (not "127.0.0.1:6380")."""
    from chaoslab.targets import TargetSpec, resolve, split_address

    assert split_address("127.0.0.1:5433") == ("127.0.0.1", 5433)
    assert split_address("[::1]:6379") == ("::1", 6379)
    assert split_address("::1") == ("::1", None)
    port = free_port()
    f = tmp_path / "stack.yaml"
    f.write_text(
        f"name: parttest\nservices:\n  cache:\n    redis: {{port: {port}, persistence: none}}\n"
    )
    stack = Stack.load(f)
    try:
        stack.up()
        target = resolve("cache", TargetSpec(service="cache"), stack_file=str(f))
        assert target.address == "127.0.0.1" and port in target.ports
        exp = tmp_path / "exp.yaml"
        exp.write_text(f"""
title: partition a service by name
stack: {f}
targets:
  cache: {{service: cache}}
probes:
  redis: {{tcp: {{port: {port}}}, every: 100ms, timeout: 200ms}}
method:
  - {{fault: network.partition, target: cache, at: 500ms, duration: 3s}}
recovery: 1s
hypothesis:
  probe.redis.availability.baseline: {{min: 1.0}}
  probe.redis.availability.recovery: {{min: 0.8}}
""")
        proc = subprocess.run(
            [PY, "-m", "chaoslab", "run", str(exp), "--runs-dir", str(tmp_path / "runs")],
            capture_output=True,
            text=True,
            timeout=120,
            env=child_env(state_dir),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # Only this run's table: another worker's experiment may hold its own table meanwhile.
        (run_dir,) = (tmp_path / "runs").iterdir()
        # The partition as it was, from the journal: not the fault phase, which opens before
        # the rules are in place (0.44 s before, beside stress-ng: 5 of its 16 samples passed).
        # The rules go before the revert is recorded (the ledger is written in between): the
        # probe was ok again 0.11 s before the record, so the window ends 1 s before it.
        journal = read_journal(run_dir)
        cut = [
            r["t"] for r in journal if r["type"] == "fault" and r["action"] in ("inject", "revert")
        ]
        assert len(cut) == 2 and cut[1] - cut[0] >= 3.0, cut
        during = [r for r in journal if r["type"] == "sample" and cut[0] <= r["t"] < cut[1] - 1.0]
        assert during and not any(r["ok"] for r in during), during
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        assert "chaoslab_" + "".join(c if c.isalnum() else "_" for c in run_dir.name) not in tables
    finally:
        stack.down(purge=True)
