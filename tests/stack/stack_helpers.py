"""Helpers shared by the stack tests."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import free_port, free_ports  # noqa: F401  (re-exported for the stack tests)

from chaoslab.stack import Stack


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def cgroup_dirs(state: dict[str, Any]) -> list[Path]:
    return [Path(d) for s in state["services"].values() for d in (s.get("cgroups") or {}).values()]


class StackFactory:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.stacks: list[Stack] = []

    def write(self, text: str, name: str | None = None) -> Path:
        d = Path(tempfile.mkdtemp(prefix="s-", dir=self.root))
        d.chmod(0o755)
        path = d / (name or "stack.yaml")
        path.write_text(text)
        return path

    def load(self, text: str) -> Stack:
        stack = Stack.load(self.write(text))
        self.stacks.append(stack)
        return stack

    def track(self, path: Path) -> Stack:
        stack = Stack.load(path)
        self.stacks.append(stack)
        return stack

    def cleanup(self) -> None:
        for s in self.stacks:
            s.down(timeout=30)
