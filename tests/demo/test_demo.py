"""``chaoslab demo --quick`` end to end against the real exchange stack (with its Prometheus):
what the demo shows is checked against what the kernel, py-spy, Prometheus and the machine
themselves recorded, and nothing of it may be left afterwards."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.conftest import PY, ROOT, port_taken

from chaoslab.observe.flamegraph import hot_functions
from chaoslab.stack import Stack

STACK_FILE = ROOT / "examples" / "exchange" / "stack.yaml"
# stack.yaml's default ports, Prometheus (9090) and the chaos exporter (9464) included
PORTS = (8000, 8080, 8081, 8082, 8474, 5433, 6380, 15433, 16380, 9090, 9464)

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _journal(run: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (run / "journal.jsonl").read_text().splitlines()
        if line.strip()
    ]


def _phases(records: list[dict[str, Any]]) -> dict[str, float]:
    return {r["name"]: float(r["t"]) for r in records if r.get("type") == "phase"}


def _stack_cgroups(stack: Stack) -> list[Path]:
    digest_dirs = []
    for root in Path("/sys/fs/cgroup").glob("*/chaoslab-stack"):
        digest_dirs += [d for d in root.iterdir() if d.name.startswith(f"{stack.name}-")]
    return digest_dirs


def test_the_quick_demo_shows_flamegraphs_ebpf_and_prometheus_and_leaves_nothing(
    tmp_path: Path, state_dir: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the exchange runs PostgreSQL as the postgres user, and eBPF needs root")
    stack = Stack.load(STACK_FILE)
    if stack.is_up():
        pytest.skip("the default exchange stack is already up (the demo would leave it up)")
    busy = [p for p in PORTS if port_taken(p)]
    if busy:
        pytest.skip(f"the exchange's fixed ports {busy} are held by something else")
    runs_dir = tmp_path / "runs"
    proc = subprocess.run(
        [PY, "-m", "chaoslab", "demo", "--quick", "--runs-dir", str(runs_dir)],
        capture_output=True,
        text=True,
        timeout=480,
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(state_dir)},
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]

    # Live progress: every step, with the demo's elapsed and remaining time.
    for i in range(1, 6):
        assert f"== [{i}/5]" in out
    assert len(re.findall(r"demo \d+:\d\d elapsed, ~\d+:\d\d left", out)) >= 10
    summary = out.split("DEMO SUMMARY", 1)[1]

    # 1. The baseline flamegraph is py-spy's own SVG of the API, with samples in it.
    baseline_svg = next(runs_dir.glob("demo-*/baseline-flamegraph.svg"))
    samples, hot = hot_functions(baseline_svg)
    # With --gil py-spy counts only samples where the API holds the GIL, so the count follows how
    # busy the API is (43 in a quick baseline on a quiet machine): a handful proves a real profile.
    assert samples >= 10 and hot
    assert str(baseline_svg) in summary

    partition = next(runs_dir.glob("*-network-partition-*"))
    throttle = next(runs_dir.glob("*-cpu-throttling-*"))
    for run in (partition, throttle):
        assert str(run / "report.html") in summary
    ebpf_ok = "CANNOT run here" not in out

    # 2. The partition: Prometheus (a real one, in the stack) answered the PromQL probes with
    # numbers, and the kernel saw retransmissions on PostgreSQL's port while the partition held.
    records = _journal(partition)
    phases = _phases(records)
    rates = [
        r["value"]
        for r in records
        if r.get("type") == "sample"
        and r.get("probe") == "order_rate"
        and r.get("value") is not None
    ]
    assert rates and max(rates) > 1, "Prometheus never returned an order rate"
    assert re.search(r"Prometheus order_rate: baseline [\d.]+ orders/s", summary)
    if ebpf_ok:
        retrans = [
            r
            for r in records
            if r.get("kind") == "retransmits"
            and r.get("port") == 5433
            and phases["fault"] - 1 <= r["t"] < phases["recovery"]
        ]
        assert sum(r["count"] for r in retrans) >= 3, (
            "no retransmissions on 5433 during the partition"
        )
        states = [r for r in records if r.get("kind") == "tcp_state" and r.get("port") == 5433]
        assert states
        assert re.search(
            r"TCP retransmits on port 5433: \d+ from the injection on, the first", summary
        )

    # 3. The throttle: a flamegraph per phase drawn in the report; the run-queue wait of the
    # API's own threads, from the scheduler's tracepoints.
    html = (throttle / "report.html").read_text()
    assert "<h2>CPU flamegraphs</h2>" in html
    for phase in ("baseline", "fault", "recovery"):
        svg = throttle / f"flamegraph-{phase}.svg"
        assert svg.exists() and hot_functions(svg)[0] > 0, phase
        assert f"src='flamegraph-{phase}.svg'" in html
    assert "grew most" in summary
    if ebpf_ok:
        records = _journal(throttle)
        waits = [r for r in records if r.get("kind") == "sched_wait_target"]
        assert sum(r["count"] for r in waits) > 100
        assert "<h2>Kernel view (eBPF)</h2>" in html and "Run-queue wait of the target" in html
    else:
        assert "eBPF tracing was skipped" in summary

    # Nothing left: the stack, its cgroups, the fault tables, py-spy and bpftrace, stopped processes.
    assert not stack.is_up()
    assert [p for p in PORTS if port_taken(p)] == []
    assert _stack_cgroups(stack) == []
    tables = subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, check=False
    ).stdout
    for run in (partition, throttle):
        run_id = json.loads((run / "summary.json").read_text()).get("run_id") or run.name
        assert re.sub(r"[^A-Za-z0-9_]", "_", run_id) not in tables
    mine = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(runs_dir) in cmd or str(STACK_FILE.parent) in cmd:
            mine.append((p.pid, p.info["status"], cmd))
    assert mine == []
