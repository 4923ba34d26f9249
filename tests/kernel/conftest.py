"""Fixtures for the kernel-level faults: unique run ids, child processes, test hosts, tmpfs
mounts, the from_record-in-another-process revert, and the leftover audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaoslab import cgroups, hosts
from chaoslab.faults.base import Fault
from chaoslab.nft import chains_of, table_name
from chaoslab.targets import ProcessRef, ResolvedTarget

PY = sys.executable

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("kernel faults need root")


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


def send(proc: subprocess.Popen[Any], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def readline(proc: subprocess.Popen[Any]) -> str:
    assert proc.stdout is not None
    return str(proc.stdout.readline())


def process_target(pid: int, name: str = "victim") -> ResolvedTarget:
    return ResolvedTarget(name=name, kind="pid", spec={"pid": pid}, processes=[ProcessRef.of(pid)])


def revert_elsewhere(fault: Fault) -> None:
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
def hostnet() -> Iterator[hosts.HostNet]:
    name = "t" + uuid.uuid4().hex[:8]
    net = hosts.create(name, ["a", "b"], subnet="10.231.7.0/24")
    try:
        assert hosts.wait_reachable(net.host("a"), net.host("b"))
        yield net
    finally:
        hosts.destroy(name)


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
