"""eBPF tracing with real bpftrace on tracepoints: retransmits rise during a real nftables
partition, refused connects show as resets, the OOM killer's victim is named, and without the
capability the tracer is skipped with the doctor's reason while the run goes on."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port, wait_for_port

from chaoslab.analysis.ebpf import ebpf_findings, ebpf_series
from chaoslab.experiment.loader import load_experiment
from chaoslab.journal import read_journal
from chaoslab.observe.bpf import ephemeral_ports
from chaoslab.runner.run import RunOptions, RunResult, run_experiment

from .conftest import Procs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="eBPF needs root")


def run(tmp_path: Path, body: str) -> tuple[RunResult, list[dict[str, Any]]]:
    exp = tmp_path / "exp.yaml"
    exp.write_text(body)
    result = run_experiment(
        load_experiment(exp),
        RunOptions(run_root=tmp_path / "runs", reports=("json",), print=lambda s: None),
    )
    assert result.run_dir is not None, result.reason
    return result, read_journal(result.run_dir)


def ebpf(records: list[dict[str, Any]], kind: str, **match: Any) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if r["type"] == "event"
        and r.get("source") == "ebpf"
        and r.get("kind") == kind
        and all(r.get(k) == v for k, v in match.items())
    ]


def service_port() -> int:
    """A free port below the ephemeral range, like 5432: both directions count on it."""
    lo, _ = ephemeral_ports()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, min(lo, 32000))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def phase_times(records: list[dict[str, Any]]) -> dict[str, float]:
    return {r["name"]: r["t"] for r in records if r["type"] == "phase"}


@needs_root
def test_partition_raises_retransmits_and_refusals_are_resets(
    procs: Procs, tmp_path: Path, state_dir: Path
) -> None:
    port, closed = service_port(), free_port()
    procs.app("tcp_pair.py", str(port))
    wait_for_port(port)
    # a client knocking on a closed port: every SYN is answered with a RST by `closed`
    procs.start(
        [
            "python3",
            "-c",
            f"""
import socket, time
while True:
    try: socket.create_connection(("127.0.0.1", {closed}), timeout=1).close()
    except OSError: pass
    time.sleep(0.1)
""",
        ]
    )
    result, records = run(
        tmp_path,
        f"""
title: ebpf partition
targets:
  db: {{address: 127.0.0.1, port: {port}}}
method:
  - {{fault: network.partition, target: db, at: 3s, duration: 6s}}
recovery: 3s
observe: {{ebpf: [retransmits, resets, tcp_state]}}
""",
    )
    assert result.exit_code == 0, result.reason
    skipped = [r for r in records if r["type"] == "observer"]
    assert not skipped, skipped
    t = phase_times(records)
    retrans = ebpf(records, "retransmits", port=port)
    during = sum(r["count"] for r in retrans if t["fault"] - 1 <= r["t"] < t["recovery"])
    before = sum(r["count"] for r in retrans if r["t"] < t["fault"] - 1)
    assert during >= 2 and before == 0, (during, before, retrans)
    # counts are per 1 s window of the run clock, at whole seconds
    assert all(r["t"] == int(r["t"]) and r["window"] == 1.0 for r in retrans)
    refused = ebpf(records, "resets", direction="sent", port=closed)
    assert sum(r["count"] for r in refused) >= 10, refused
    assert ebpf(records, "tcp_state", state="SYN_SENT")
    stopped = ebpf(records, "tracer", action="stopped")
    assert stopped and stopped[0]["totals"]["retransmits"] >= during
    assert ebpf(records, "tracer", action="started")[0]["ports"] == [port]
    said = ebpf_findings(records)
    # findings name a rise of at least 3 events (their noise floor); a busy machine may give 2
    if during >= 3:
        assert any(
            f"TCP retransmits on port {port} during the fault (0 in baseline" in s for s in said
        ), said
    assert not any(str(closed) in s for s in said), said  # findings keep to the targets' ports
    series = ebpf_series(records)
    assert sum(v for _, v in series["retransmits"]) >= during
    # the analysis carries the findings and the report draws the counts on the run's timeline
    assert set(said) <= set((result.analysis or {})["findings"])
    from chaoslab.report import write_reports

    assert result.run_dir is not None
    write_reports(result.run_dir, ("html",), analysis=result.analysis)
    assert "Kernel events per second (eBPF)" in (result.run_dir / "report.html").read_text()


@needs_root
def test_oom_kill_during_a_memory_limit_is_counted(
    procs: Procs, tmp_path: Path, state_dir: Path
) -> None:
    hog = procs.app("memory_hog.py")
    result, records = run(
        tmp_path,
        f"""
title: ebpf oom
targets:
  hog: {{pid: {hog.pid}}}
method:
  - {{fault: memory.limit, target: hog, at: 1s, duration: 4s, limit: 64MB}}
recovery: 2s
observe: {{ebpf: [oom_kills, sched_wait]}}
""",
    )
    assert hog.wait(timeout=10) == -9, "the hog was not OOM-killed"
    kills = ebpf(records, "oom_kills", pid=hog.pid)
    assert kills and kills[0]["comm"].startswith("python"), (kills, result.reason)
    t = phase_times(records)
    assert t["fault"] - 1 <= kills[0]["t"] < t["recovery"]
    said = ebpf_findings(records)
    assert any(f"(pid {hog.pid}): 1 during the fault." in s for s in said), said
    waits = ebpf(records, "sched_wait")
    assert len(waits) >= 4 and all(r["count"] > 0 and r["max_us"] >= r["avg_us"] for r in waits)


def test_without_the_capability_the_tracer_is_skipped_with_the_doctors_reason(
    procs: Procs, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSLAB_DOCTOR_DENY", "bpftrace")
    sleeper = procs.start(["python3", "-c", "import time; time.sleep(60)"])
    result, records = run(
        tmp_path,
        f"""
title: ebpf denied
targets:
  s: {{pid: {sleeper.pid}}}
method:
  - {{fault: process.pause, target: s, at: 200ms, duration: 300ms}}
recovery: 300ms
observe: {{ebpf: [retransmits]}}
""",
    )
    assert result.exit_code == 0, result.reason
    skipped = [r for r in records if r["type"] == "observer" and r["action"] == "skipped"]
    assert len(skipped) == 1 and skipped[0]["observer"] == "EbpfTracer", skipped
    reason = skipped[0]["reason"]
    assert (
        "not running as root" in reason if os.geteuid() else "bpftrace is not available" in reason
    ), reason
    assert ebpf_findings(records) == [f"eBPF tracing was skipped: {reason}."]
