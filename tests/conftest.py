"""Fixtures shared by every test folder."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

import chaoslab
from chaoslab.journal import read_journal
from chaoslab.system import cgroups
from chaoslab.system.nft import chains_of, table_name

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
# Children run the chaoslab this test process imported (a worktree's, or whatever PYTHONPATH says).
SRC = Path(chaoslab.__file__).resolve().parents[1]


def chaoslab_argv(*args: str) -> list[str]:
    return [PY, "-m", "chaoslab", *args]


def child_env(state: Path) -> dict[str, str]:
    """The environment of a ``chaoslab`` child with a private state directory."""
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "CHAOSLAB_STATE_DIR": str(state),
        "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC),
    }


def wait_until(cond: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return False


def proc_state(pid: int) -> str:
    """The state letter from /proc/PID/stat (R, S, T, Z...)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def stopped(pid: int, timeout: float = 10.0) -> bool:
    """Whether ``pid`` is stopped (T) within ``timeout``. A SIGSTOP takes effect when the process
    next runs: beside ``stress-ng --cpu 2`` a runnable process can still read R for a while after
    the signal was sent (and after the runner recorded the inject), so a test waits on the state
    rather than reading it once."""
    return wait_until(lambda: proc_state(pid) == "T", timeout)


def the_run_dir(runs: Path) -> Path:
    """The one run directory under ``runs``."""
    dirs = [d for d in runs.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def ledger_entries(state: Path) -> list[Path]:
    """The fault ledger's entries in the state directory ``state``: empty when all was reverted."""
    return list((state / "ledger").glob("*/[0-9]*.json")) if (state / "ledger").exists() else []


# -- `chaoslab run` as a child process, killed mid-fault (the runner and targets tests) --


def start_run(exp_file: Path, runs: Path, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "chaoslab", "run", str(exp_file), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(state),
    )


@contextlib.contextmanager
def run_in_fault(exp_file: Path, runs: Path, state: Path) -> Iterator[subprocess.Popen[str]]:
    """A `chaoslab run` in a subprocess, yielded once its first fault is injected (killed at exit)."""
    runner = start_run(exp_file, runs, state)
    try:
        wait_for_record(runs, injected)
        yield runner
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate(timeout=30)


def kill_mid_fault(exp_file: Path, runs: Path, state: Path) -> None:
    """SIGKILL the runner while its fault is active: the fault stays, only the ledger knows."""
    with run_in_fault(exp_file, runs, state) as runner:
        runner.kill()


def wait_for_record(runs: Path, pred: Any, timeout: float = 20) -> None:
    def found() -> bool:
        if not runs.exists() or not any(runs.iterdir()):
            return False
        return any(pred(r) for r in read_journal(the_run_dir(runs)))

    assert wait_until(found, timeout), "the run never reached the expected point"


def injected(r: dict[str, Any]) -> bool:
    return r["type"] == "fault" and r["action"] == "inject"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int, avoid: range = range(0)) -> list[int]:
    """``n`` distinct free ports, none in ``avoid``. Every socket stays bound until all are chosen:
    separate free_port() calls can hand out one port twice (seen in CI, where two services of one
    stack file got the same port)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            if port not in avoid:
                ports.append(port)
        return ports
    finally:
        for s in held:
            s.close()


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something holds ``port`` (a fixed port a test would need)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


# `make test` runs on two pytest-xdist workers with --dist loadgroup. A group goes whole to one
# worker, in order: one group per folder keeps a folder's module and package fixtures (one
# PostgreSQL, one pipeline, one exchange) single, as in a serial run. Tests that need the same
# machine-wide thing (the exchange's fixed ports) share a group, else one of them would skip; so
# do the folders that run a whole exchange under load (two at once made the catalog's and the
# demo's load generator fall behind: lag p99 134 ms, run invalid). The kernel-level tests (once
# the folder tests/kernel, now beside the code they test) keep the one group they always ran in:
# test hosts on fixed subnets (10.231.7-9.0/24), a CPU burner on every core beside throughput and
# throttling figures and the doctor's time bound, real OOM kills; none of them was ever run beside
# another, and nothing outside the group was ever kept from running beside them.
SHARED_GROUPS = {
    "tests/catalog": "exchange-stacks",
    "tests/demo": "exchange-stacks",
    "tests/chaos": "exchange-stacks",
    **dict.fromkeys((
        "tests/faults/test_cpu.py",
        "tests/faults/test_disk.py",
        "tests/faults/test_limits.py",
        "tests/faults/test_memory.py",
        "tests/faults/test_netfilter.py",
        "tests/faults/test_postgres.py",
        "tests/faults/test_tc.py",
        "tests/runner/test_recover.py",
        "tests/doctor/",
        "tests/hosts/",
    ), "kernel"),
}


def xdist_group_of(nodeid: str) -> str:
    """The xdist group of a test, from its node id (``tests/faults/test_x.py::test_y``)."""
    path = nodeid.split("::", 1)[0]
    for prefix, name in SHARED_GROUPS.items():
        if path.startswith(prefix):
            return name
    parts = path.split("/")[:-1]
    # tests/platforms holds one folder per platform, each a world of its own
    return "/".join(parts[:3] if parts[1:2] == ["platforms"] else parts[:2]) or "tests"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's own loadgroup reads ``xdist_group`` marks into node ids, which pytest 9 no longer
    lets it rewrite; this scheduler groups by ``xdist_group_of`` instead."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # only here: xdist is there when this hook runs

    class FolderScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    return FolderScheduling(config, log)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated chaoslab state directory (ledger, halt flag) for this test."""
    d = tmp_path / "state"
    d.mkdir()
    monkeypatch.setenv("CHAOSLAB_STATE_DIR", str(d))
    return d


def run_baseline(load: Any, *, ok: int, within: float) -> None:
    """Keep a plugin load (``chaos_load``) running until it has ``ok`` successful operations: the
    baseline the session learns its steady state from (GUIDE §4) holds that much data whatever
    the machine's speed. A fixed sleep gives a busy machine a baseline of a few slow, lagging
    operations, and its tolerance then judges every later window by them."""
    deadline = time.monotonic() + within
    while load.stats()["ok"] < ok:
        if time.monotonic() > deadline:
            raise AssertionError(f"the baseline had {load.stats()['ok']} successful operations after {within}s, "
                                 f"wanted {ok}: {load.stats()}")
        time.sleep(0.1)


def run_until_steady(load: Any, *, within: float) -> float | None:
    """Keep a plugin load (``chaos_load``) running after a fault until the session's own analysis
    shows the recovery (ChaosSession.wait_for_recovery), or ``within`` seconds plus the windows
    that prove it have passed; returns the time to recovery seen, or None. Counting failures is
    not enough: on a machine with both cores busy the first windows after a fault can answer
    every request yet still miss the baseline's p99, and the session must go on until they don't."""
    from chaoslab.analysis.windows import RECOVERED_AFTER

    ttr: float | None = load.session.wait_for_recovery(within + RECOVERED_AFTER + 2)
    return ttr


# -- the small example HTTP service (examples/basic/service.py) as a real child process --

SERVICE = ROOT / "examples" / "basic" / "service.py"


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pattern(self) -> str:
        return f"service.py --port {self.port}$"

    def status(self) -> str:
        return str(psutil.Process(self.pid).status())

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_service() -> Service:
    port = free_port()
    proc = subprocess.Popen([PY, str(SERVICE), "--port", str(port)], stdout=subprocess.DEVNULL)
    wait_for_port(port)
    return Service(proc, port)


def stop_service(svc: Service) -> None:
    if svc.proc.poll() is None:
        try:
            os.kill(svc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        svc.proc.kill()
    svc.proc.wait(timeout=10)


@pytest.fixture
def service() -> Iterator[Service]:
    svc = start_service()
    try:
        yield svc
    finally:
        stop_service(svc)


def decline_if_generator_behind(analysis: dict[str, Any]) -> None:
    """The one case where a test may decline to judge a run: chaoslab itself judged it INVALID
    because its load generator fell behind (the machine was too busy to send at the rate, so
    rates and latencies are not the system's). The test is skipped with chaoslab's reason."""
    reason = str(analysis.get("invalid_reason"))
    if analysis.get("valid") is False and "load generator fell behind" in reason:
        pytest.skip(f"chaoslab judged the run INVALID: {reason}")


def assert_held(proc: subprocess.CompletedProcess[str], analysis: dict[str, Any]) -> None:
    """The run held its hypothesis. A run the load generator could not drive at its rate on a busy
    machine is INVALID (exit 4) for that reason alone; it is accepted here only when every line of
    its hypothesis still passed, so the test's own checks on what the system holds decide."""
    out = proc.stdout + proc.stderr
    lagged = (
        proc.returncode == 4
        and analysis.get("valid") is False
        and "load generator fell behind" in str(analysis.get("invalid_reason"))
    )
    assert proc.returncode == 0 or lagged, out[-4000:]
    if not lagged:
        assert analysis["held"] is True and analysis["valid"] is True, out[-4000:]
    assert analysis["hypothesis"] and all(a["passed"] for a in analysis["hypothesis"]), analysis[
        "hypothesis"
    ]


# -- kernel faults: unique run ids, child processes, tmpfs mounts, the leftover audit -----------
# (tests/faults, tests/runner, tests/doctor and tests/hosts use them)


@pytest.fixture
def run_id() -> str:
    return "k" + uuid.uuid4().hex[:10]


class Children:
    """Processes a test starts; all killed at teardown, whatever happened."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def python(self, code: str, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        kwargs.setdefault("stdin", subprocess.PIPE)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("text", True)
        proc = subprocess.Popen([PY, "-c", textwrap.dedent(code), *args], **kwargs)
        self.procs.append(proc)
        return proc

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(argv, **kwargs)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for s in (p.stdin, p.stdout, p.stderr):
                if s:
                    s.close()


@pytest.fixture
def children() -> Iterator[Children]:
    c = Children()
    yield c
    c.close()


def fault_cgroups(run_id: str) -> list[Path]:
    """Every cgroup directory named after this run, in every hierarchy."""
    out: list[Path] = []
    for root in set(cgroups.mounts().values()):
        out.extend(root.glob(f"chaoslab-{run_id}-*"))
    return out


def audit(run_id: str, *, netns: list[str] | None = None) -> None:
    """Nothing of the run is left: no fault cgroup, no nftables table (root and given namespaces),
    no process whose environment or command line names the run."""
    assert fault_cgroups(run_id) == []
    table = table_name(run_id)
    assert chains_of(table) is None, f"nftables table {table} left behind"
    for ns in netns or []:
        assert chains_of(table, ns) is None, f"nftables table {table} left in {ns}"
    leftovers = subprocess.run(
        ["pgrep", "-f", run_id], capture_output=True, text=True
    ).stdout.split()
    assert [p for p in leftovers if int(p) != os.getpid()] == []


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs of our own: disk faults never touch the real disk."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", f"chaoslab-{uuid.uuid4().hex[:8]}", str(mnt)],
        check=True,
    )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
