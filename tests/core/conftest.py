from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from tests.conftest import PY, ROOT, free_port, wait_for_port

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


def write_experiment(path: Path, body: str) -> Path:
    path.write_text(body)
    return path
