"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

import chaoslab

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
    return {**os.environ, "CHAOSLAB_STATE_DIR": str(state),
            "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated chaoslab state directory (ledger, halt flag) for this test."""
    d = tmp_path / "state"
    d.mkdir()
    monkeypatch.setenv("CHAOSLAB_STATE_DIR", str(d))
    return d


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
