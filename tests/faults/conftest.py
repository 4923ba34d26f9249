"""Helpers for the stacking and recover tests: a scratch cgroup with a victim process inside,
``chaoslab run``/``recover`` as real child processes with a private state directory, and
readers that look at the system itself (cgroup files, /proc, the proxy API, nft)."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PY, chaoslab_argv, child_env, fault_cgroups

from chaoslab.faults.base import Fault
from chaoslab.system import cgroups, hosts
from chaoslab.targets import ProcessRef, ResolvedTarget

HERE = Path(__file__).parent


NOT_ROOT = {"test_process_faults.py", "test_chaosmesh_rules.py"}
"""Modules of this folder that need no root (process faults signal their own children; the Chaos
Mesh rules build resources and touch no cluster)."""


def _needs_root(path: Path) -> bool:
    return HERE in path.parents and path.name not in NOT_ROOT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _needs_root(Path(str(item.fspath))):
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _need_root(request: pytest.FixtureRequest) -> None:
    if os.geteuid() != 0 and _needs_root(Path(str(request.node.fspath))):
        pytest.skip("these faults need root")


@dataclass
class Run:
    """One ``chaoslab run`` child; ``lines`` is what it printed so far."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def read_until(self, needle: str, timeout: float = 180.0) -> bool:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                return False
            self.lines.append(line)
            if needle in line:
                return True
        return False

    def finish(self, timeout: float = 300.0) -> int:
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out or "")
        return int(self.proc.returncode)

    @property
    def run_id(self) -> str:
        for line in self.lines:
            m = re.search(r"\] run (\S+):", line)
            if m:
                return m.group(1)
        return ""

    def text(self) -> str:
        return "".join(self.lines)


class Lab:
    """A private state directory plus the experiment files, runs and recovers of one test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.runs: list[Run] = []
        self.n = 0

    def start(self, experiment: str) -> Run:
        self.n += 1
        exp = self.tmp / f"exp{self.n}.yaml"
        exp.write_text(experiment)
        proc = subprocess.Popen(
            chaoslab_argv("run", "--runs-dir", str(self.tmp / "runs"), str(exp)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=child_env(self.state),
            start_new_session=True,
        )
        run = Run(proc)
        self.runs.append(run)
        return run

    def recover(self, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            chaoslab_argv("recover"),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(self.state),
        )

    def start_recover(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            chaoslab_argv("recover"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=child_env(self.state),
        )

    def ledger_entries(self) -> list[Path]:
        return sorted((self.state / "ledger").glob("*/[0-9]*.json"))

    def owner_records(self) -> list[Path]:
        return sorted((self.state / "owners").glob("*.json"))

    def close(self) -> None:
        for r in self.runs:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait(timeout=60)
        # Whatever a failed test left: recover it, so the next test starts clean.
        if self.ledger_entries():
            self.recover()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@dataclass
class Scratch:
    """A scratch cgroup (cpu, pids, memory) named ``rel``, with a sleeping victim inside."""

    rel: str
    victim: subprocess.Popen[bytes]

    def dir(self, controller: str) -> Path:
        root, _ = cgroups.where(controller)
        return root / self.rel

    def read(self, controller: str, name: str) -> str:
        return (self.dir(controller) / name).read_text().strip()

    def membership(self, pid: int | None = None) -> dict[str, str]:
        """Controller -> cgroup path, as /proc/PID/cgroup says."""
        out: dict[str, str] = {}
        for line in Path(f"/proc/{pid or self.victim.pid}/cgroup").read_text().splitlines():
            _, ctrls, rel = line.split(":", 2)
            for c in ctrls.split(",") if ctrls else ["unified"]:
                out[c] = rel
        return out

    def nofile(self) -> tuple[int, int]:
        """Max open files of the victim, from /proc/PID/limits."""
        for line in Path(f"/proc/{self.victim.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
        raise AssertionError("no open-files line in /proc/PID/limits")

    def snapshot(self) -> dict[str, Any]:
        """Every setting the tests fault, read from the system."""
        return {
            "cpu": (self.read("cpu", "cpu.cfs_quota_us"), self.read("cpu", "cpu.cfs_period_us")),
            "pids": self.read("pids", "pids.max"),
            "memory": self.read("memory", "memory.limit_in_bytes"),
            "nofile": self.nofile(),
            "member": {
                k: v for k, v in self.membership().items() if k in ("cpu", "pids", "memory")
            },
        }


CONTROLLERS = ("cpu", "pids", "memory")


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    rel = "sstack-" + uuid.uuid4().hex[:8]
    dirs = []
    for c in CONTROLLERS:
        root, version = cgroups.where(c)
        if version != 1:
            pytest.skip("these tests read cgroup v1 files")
        (root / rel).mkdir()
        dirs.append(root / rel)
    victim = subprocess.Popen([PY, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        for d in dirs:
            (d / "cgroup.procs").write_text(str(victim.pid))
        # A non-default open-files limit: a revert to "what the kernel gives" would show.
        resource.prlimit(victim.pid, resource.RLIMIT_NOFILE, (2000, 10000))
        yield Scratch(rel, victim)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        for d in dirs:
            for pid in (d / "cgroup.procs").read_text().split() if d.is_dir() else []:
                try:
                    (d.parent / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def nft_tables() -> list[str]:
    out = subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, timeout=60
    ).stdout
    return [line.split()[-1] for line in out.splitlines() if line.startswith("table")]


# -- clock faults: a service that reports its own clock --------------------------------------------

CLOCK_REPORTER = """
import json, os, sys, time
out = sys.argv[1]
while True:
    with open(out + ".tmp", "w") as f:
        json.dump({"own": time.time()}, f)
    os.replace(out + ".tmp", out)
    time.sleep(0.05)
"""
"""``python -c CLOCK_REPORTER FILE``: writes its own time.time() to FILE 20 times a second."""


def own_skew(report: Path, timeout: float = 20.0) -> float:
    """The reporting service's clock minus true time, from a report written after this call began."""
    import json

    before = time.time()
    while True:
        try:
            # the kernel stamps the file when the service wrote it: true time of that write, so a
            # reader descheduled on a busy machine does not count its own delay as skew
            with open(report, "rb") as f:
                data, written = json.loads(f.read()), os.fstat(f.fileno()).st_mtime
            fresh = written >= before
        except (OSError, ValueError):
            data, fresh = None, False
        t = time.time()
        if data is not None and fresh:
            return float(data["own"]) - written
        if t - before > timeout:
            raise TimeoutError("the service stopped reporting its clock")
        time.sleep(0.02)


def clock_rate(skew: Any, seconds: float = 1.0) -> float:
    """How fast the service's clock runs, from two readings of ``skew()`` ``seconds`` apart."""
    a_true, a_skew = time.time(), skew()
    time.sleep(seconds)
    b_true, b_skew = time.time(), skew()
    return float(1.0 + (b_skew - a_skew) / (b_true - a_true))


def wait_for(pred: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


# -- kernel faults on processes and test hosts ---------------------------------------------------


def send(proc: subprocess.Popen[Any], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def readline(proc: subprocess.Popen[Any]) -> str:
    assert proc.stdout is not None
    return str(proc.stdout.readline())


def process_target(pid: int, name: str = "victim") -> ResolvedTarget:
    return ResolvedTarget(name=name, kind="pid", spec={"pid": pid}, processes=[ProcessRef.of(pid)])


def revert_elsewhere(fault: Fault[Any]) -> None:
    """Revert through ``Fault.from_record`` in a fresh interpreter, as ``chaoslab recover`` does."""
    code = textwrap.dedent("""
        import json, sys
        from chaoslab import faults
        record = json.loads(sys.stdin.read())
        fault = faults.get(record["fault"]).from_record(record)
        fault.revert()
        fault.revert()  # idempotent
    """)
    proc = subprocess.run(
        [PY, "-c", code],
        input=json.dumps(fault.to_record()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def host_target(net: hosts.HostNet, name: str) -> ResolvedTarget:
    ref = f"{net.name}/{name}"
    return ResolvedTarget(name=name, kind="host", spec={"host": ref}, address=ref)


@pytest.fixture
def hostnet() -> Iterator[hosts.HostNet]:
    name = "t" + uuid.uuid4().hex[:8]
    net = hosts.create(name, ["a", "b"], subnet="10.231.7.0/24")
    try:
        assert hosts.wait_reachable(net.host("a"), net.host("b"))
        yield net
    finally:
        hosts.destroy(name)


__all__ = ["fault_cgroups"]
