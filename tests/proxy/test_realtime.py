"""``chaoslab proxy serve --realtime``: every thread of the proxy at SCHED_FIFO (as the kernel
reports it), and the fallback with a warning when the kernel refuses (CAP_SYS_NICE dropped).
With ``--realtime-toxics`` the loop thread is at SCHED_RR 1 exactly while a toxic is set; by
default it never asks for a real-time class."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port

from .helpers import ProxyProcess, TcpServer, recv_all

pytestmark = pytest.mark.root


def _policies(pid: int) -> set[int]:
    return {os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{pid}/task")}


def _roundtrip(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"ping")
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs root (CAP_SYS_NICE)")
def test_serve_realtime_runs_every_thread_at_sched_fifo(echo_server: TcpServer) -> None:
    proxy = ProxyProcess("--realtime", "2")
    try:
        assert _policies(proxy.pid) == {os.SCHED_FIFO}
        assert os.sched_getparam(proxy.pid).sched_priority == 2
        host, port = proxy.create("rt", echo_server.port)
        proxy.toxic("rt", "latency", latency=5)
        assert _roundtrip(host, port) == b"ping"
        assert _policies(proxy.pid) == {os.SCHED_FIFO}, (
            "a thread started later is not at SCHED_FIFO"
        )
    finally:
        proxy.stop()
    assert proxy.proc.stderr is not None
    assert "running at SCHED_FIFO 2" in proxy.proc.stderr.read()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_refused_realtime_falls_back_with_a_warning() -> None:
    proc = subprocess.Popen(
        [
            "setpriv",
            "--bounding-set",
            "-sys_nice",
            "--inh-caps",
            "-sys_nice",
            sys.executable,
            "-m",
            "chaoslab.proxy",
            "serve",
            "--port",
            "0",
            "--realtime",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        warning = proc.stderr.readline()
        assert warning.startswith(
            "warning: the kernel refused SCHED_FIFO 1 (Operation not permitted)"
        ), warning
        assert "listening on http://127.0.0.1:" in proc.stdout.readline()
        assert _policies(proc.pid) == {os.SCHED_OTHER}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs root (CAP_SYS_NICE)")
def test_stack_proxy_service_with_realtime(tmp_path: Path) -> None:
    from chaoslab.stack import Stack

    port = free_port()
    (tmp_path / "stack.yaml").write_text(
        f"name: rtp\nservices:\n  faults:\n    chaoslab-proxy:\n"
        f"      port: {port}\n      realtime: 1\n"
    )
    # a second stack keeps the shared parent group alive, so the hand-back is read, not skipped
    # (the kernel refused it with EINVAL while the removed group's destruction was pending)
    (tmp_path / "other.yaml").write_text("name: rtkeep\nservices:\n  w:\n    command: sleep 300\n")
    other = Stack.load(str(tmp_path / "other.yaml"))
    other.up()
    try:
        stack = Stack.load(str(tmp_path / "stack.yaml"))
        stack.up()
        try:
            pid = int(stack.resolve("faults")["pid"])
            assert _policies(pid) == {os.SCHED_FIFO}
            cpu = Path(stack.resolve("faults")["cgroups"]["cpu"])
            assert int((cpu / "cpu.rt_runtime_us").read_text()) > 0
        finally:
            stack.down()
        # the budget given to the service's groups is handed back to the shared parent
        parent = cpu.parent.parent
        held = sum(
            int((s / "cpu.rt_runtime_us").read_text())
            for s in parent.iterdir()
            if (s / "cpu.rt_runtime_us").exists()
        )
        assert int((parent / "cpu.rt_runtime_us").read_text()) == held == 0
    finally:
        other.down()


def _rr_allowed() -> bool:
    """Whether this machine lets a child of ours run at SCHED_RR 1 (root, and a cgroup with a
    real-time budget)."""
    try:
        subprocess.run([sys.executable, "-c", "import os; os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))"],
                       check=True, capture_output=True, timeout=30)
    except subprocess.CalledProcessError:
        return False
    return True


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_RR needs root (CAP_SYS_NICE)")
def test_realtime_toxics_runs_the_loop_at_sched_rr_while_a_toxic_is_set(echo_server: TcpServer) -> None:
    if not _rr_allowed():
        pytest.skip("SCHED_RR refused here (a cgroup without real-time budget)")
    proxy = ProxyProcess("--realtime-toxics")
    try:
        host, port = proxy.create("auto", echo_server.port)
        assert os.sched_getscheduler(proxy.pid) == os.SCHED_OTHER  # only forwarding: like any process
        proxy.toxic("auto", "latency", latency=5)
        assert os.sched_getscheduler(proxy.pid) == os.SCHED_RR
        assert os.sched_getparam(proxy.pid).sched_priority == 1
        assert _roundtrip(host, port) == b"ping"
        proxy.http.post("/proxies/auto/toxics", json={"type": "slicer", "name": "s2"}).raise_for_status()
        assert proxy.http.delete("/proxies/auto/toxics/latency_downstream").status_code == 204
        assert os.sched_getscheduler(proxy.pid) == os.SCHED_RR  # one toxic is still set
        assert proxy.http.post("/reset").status_code == 204
        assert os.sched_getscheduler(proxy.pid) == os.SCHED_OTHER
        proxy.toxic("auto", "latency", latency=5)
        assert proxy.http.delete("/proxies/auto").status_code == 204  # its toxics go with it
        assert os.sched_getscheduler(proxy.pid) == os.SCHED_OTHER
    finally:
        proxy.stop()


def test_by_default_toxics_keep_ordinary_scheduling(echo_server: TcpServer) -> None:
    """Root may take a real-time class, and the proxy does not unless told to."""
    proxy = ProxyProcess()
    try:
        host, port = proxy.create("plain", echo_server.port)
        proxy.toxic("plain", "latency", latency=5)
        assert _roundtrip(host, port) == b"ping"
        assert _policies(proxy.pid) == {os.SCHED_OTHER}
    finally:
        proxy.stop()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_refused_sched_rr_says_so_once_and_toxics_still_work(echo_server: TcpServer) -> None:
    proc = subprocess.Popen(
        ["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice",
         sys.executable, "-m", "chaoslab.proxy", "serve", "--port", "0", "--realtime-toxics"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        m = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert m
        api = f"http://127.0.0.1:{m.group(1)}"
        r = httpx.post(f"{api}/proxies", json={"name": "p", "upstream": f"127.0.0.1:{echo_server.port}"})
        host, port = r.json()["listen"].rsplit(":", 1)
        for i in range(3):
            httpx.post(f"{api}/proxies/p/toxics", json={"type": "latency", "name": f"l{i}"}).raise_for_status()
            httpx.delete(f"{api}/proxies/p/toxics/l{i}").raise_for_status()
        httpx.post(f"{api}/proxies/p/toxics", json={"type": "latency", "attributes": {"latency": 5}}).raise_for_status()
        assert _roundtrip(host, int(port)) == b"ping"
        assert _policies(proc.pid) == {os.SCHED_OTHER}
    finally:
        proc.terminate()
        proc.wait(10)
    lines = proc.stderr.read().splitlines()
    refused = [ln for ln in lines if "refused SCHED_RR 1 (Operation not permitted)" in ln]
    assert len(refused) == 1, lines
