"""``chaoslab doctor`` is fast and complete; every kernel fault refuses with the doctor's reason
(exit code 4) when a capability is missing, simulated at the capability-check layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import Children

from chaoslab import faults
from chaoslab.cli import doctor
from chaoslab.errors import CapabilityError
from chaoslab.system import capabilities

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the kernel faults the doctor checks need root"),
]

# What each kernel fault needs, and the check the test denies to make it refuse.
NEEDS = {
    "cpu.throttle": "cgroup.cpu",
    "memory.limit": "cgroup.memory",
    "pids.limit": "cgroup.pids",
    "disk.io_throttle": "cgroup.blkio",
    "cpu.stress": "root",
    "memory.stress": "root",
    "io.stress": "stress-ng",
    "process.rlimit": "prlimit",
    "network.partition": "nft",
    "network.loss": "nft",
    "network.bandwidth.tc": "tc.tbf",
    "network.latency.netem": "tc.netem",
    "postgres.exhaust_connections": "asyncpg",
}


def chaoslab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaoslab.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_report_is_fast_and_lists_every_fault() -> None:
    # The checks are timed, not the first import of every fault family (pydantic models, httpx:
    # about 1 s more when the machine is busy); the CLI test below bounds the whole.
    faults.all_faults()
    t0 = time.perf_counter()
    data = doctor.report()
    elapsed = time.perf_counter() - t0
    print(f"doctor: {elapsed * 1000:.0f} ms for {len(data['capabilities'])} checks")
    assert elapsed < 1.0
    names = {r["fault"] for r in data["faults"]}
    assert set(NEEDS) <= names
    caps = {c["name"]: c for c in data["capabilities"]}
    for required in (
        "root",
        "cgroup",
        "cgroup.cpu",
        "cgroup.memory",
        "nft",
        "iptables",
        "tc.tbf",
        "tc.netem",
        "netns",
        "bpftrace",
        "tracefs",
        "stress-ng",
        "py-spy",
        "docker",
    ):
        assert required in caps
        assert caps[required]["detail"]


def test_cli_json_and_table() -> None:
    t0 = time.perf_counter()
    out = chaoslab("doctor", "--json")
    wall = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (
        data["seconds"] < 3.0
    )  # 0.1 s of checks plus importing every fault family, on a busy machine
    print(
        f"chaoslab doctor --json: {data['seconds'] * 1000:.0f} ms of checks, {wall:.2f} s with interpreter start"
    )
    rows = {r["fault"]: r for r in data["faults"]}
    assert rows["cpu.throttle"]["ok"] is True
    text = chaoslab("doctor")
    assert text.returncode == 0
    assert "Faults" in text.stdout and "network.partition" in text.stdout


def test_netem_row_says_why_and_what_instead() -> None:
    row = next(r for r in doctor.fault_table() if r.fault == "network.latency.netem")
    if capabilities.check("tc.netem").ok:
        assert row.ok
    else:
        assert not row.ok and row.reason and "netem" in row.reason
        assert row.instead and "network.latency" in row.instead


@pytest.mark.parametrize("fault,capability", sorted(NEEDS.items()))
def test_fault_refuses_with_the_doctors_reason(
    fault: str, capability: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = faults.get(fault)
    monkeypatch.setenv(capabilities.DENY_ENV, capability)
    with pytest.raises(CapabilityError) as info:
        cls.check()
    assert info.value.reason == capabilities.check(capability).detail
    assert info.value.exit_code == 4
    row = next(r for r in doctor.fault_table() if r.fault == fault)
    assert not row.ok and row.reason == info.value.reason


def test_without_root_every_kernel_fault_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(capabilities.DENY_ENV, "root")
    root_faults = [
        f for f in NEEDS if f not in ("io.stress", "postgres.exhaust_connections", "process.rlimit")
    ]
    for name in root_faults:
        with pytest.raises(CapabilityError, match="not running as root"):
            faults.get(name).check()


def test_a_monkeypatched_check_function(monkeypatch: pytest.MonkeyPatch) -> None:
    real = capabilities.check

    def fake(name: str) -> capabilities.Check:
        if name == "cgroup.memory":
            return capabilities.Check(
                name, False, "the cgroup 'memory' controller is not available (mounted: cpu)"
            )
        return real(name)

    monkeypatch.setattr(capabilities, "check", fake)
    with pytest.raises(CapabilityError, match="'memory' controller is not available"):
        faults.get("memory.limit").check()
    faults.get("cpu.throttle").check()


def test_run_exits_4_with_the_reason(tmp_path: Path, children: Children) -> None:
    victim = children.python("import time; time.sleep(60)")
    base = tmp_path
    exp = base / "exp.yaml"
    exp.write_text(
        "title: refused\n"
        f"targets:\n  me: {{pid: {victim.pid}}}\n"
        "method:\n  - {fault: memory.limit, target: me, at: 0s, duration: 1s, limit: 64MB}\n"
        "max_duration: 30s\n"
    )
    out = chaoslab(
        "run",
        "--runs-dir",
        str(base / "runs"),
        str(exp),
        env={capabilities.DENY_ENV: "cgroup.memory", "CHAOSLAB_STATE_DIR": str(base / "state")},
    )
    assert out.returncode == 4, out.stdout + out.stderr
    assert "the cgroup 'memory' controller is not available" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
