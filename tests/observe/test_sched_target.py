"""The targets' own run-queue wait (``sched_wait_target``): a process spinning in a real cgroup CPU
quota waits for the next period, which the kernel's sched_switch tracepoint shows for its
threads alone, while the machine's average stays far lower."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.conftest import PY

from chaoslab.analysis.ebpf import ebpf_findings
from chaoslab.experiment.loader import load_experiment
from chaoslab.journal import read_journal
from chaoslab.runner.run import RunOptions, run_experiment

from .conftest import Procs

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="eBPF and cgroups need root"),
]


def _avg(records: list[dict], kind: str, lo: float, hi: float) -> float:
    picked = [
        r
        for r in records
        if r.get("source") == "ebpf" and r.get("kind") == kind and lo <= r["t"] and r["t"] + 1 <= hi
    ]
    n = sum(r["count"] for r in picked)
    return sum(r["avg_us"] * r["count"] for r in picked) / n if n else 0.0


def test_a_throttled_process_waits_in_the_run_queue_and_only_its_threads_are_counted(
    tmp_path: Path, procs: Procs
) -> None:
    # Two threads that want the CPU all the time, so they are runnable whenever the quota allows.
    spin = procs.start(
        [
            PY,
            "-c",
            "import threading\ndef f():\n    while True: pass\n"
            "threading.Thread(target=f, daemon=True).start()\nf()",
        ]
    )
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""
title: throttled spinner
targets:
  spin: {{pid: {spin.pid}}}
observe: {{ebpf: [sched_wait]}}
method:
  - {{fault: cpu.throttle, target: spin, at: 3s, duration: 4s, cores: 0.05}}
recovery: 2s
""")
    result = run_experiment(
        load_experiment(exp),
        RunOptions(run_root=tmp_path / "runs", reports=("json",), print=lambda s: None),
    )
    assert result.run_dir is not None, result.reason
    records = [dict(r) for r in read_journal(result.run_dir)]
    started = next(r for r in records if r.get("kind") == "tracer" and r.get("action") == "started")
    assert started["pids"] == [spin.pid]
    phases = {r["name"]: r["t"] for r in records if r["type"] == "phase"}
    target_base = _avg(records, "sched_wait_target", phases["baseline"], phases["fault"])
    target_fault = _avg(records, "sched_wait_target", phases["fault"], phases["recovery"])
    machine_fault = _avg(records, "sched_wait", phases["fault"], phases["recovery"])
    # A twentieth of a core for two spinning threads: each waits most of every quota period, so
    # their wait per switch-in grows (by more than 4x on a 2-core machine with a load of 35, far
    # more on a quiet one), above the machine's. Preemptions count: a thread the quota stops is
    # preempted, not asleep.
    assert target_fault > 3_000, target_fault
    assert target_fault > 2 * target_base, (target_base, target_fault)
    assert target_fault > 3 * machine_fault, (target_fault, machine_fault)
    text = " ".join(ebpf_findings(read_journal(result.run_dir)))
    assert "Run-queue wait of the target's threads" in text and "during the fault" in text
