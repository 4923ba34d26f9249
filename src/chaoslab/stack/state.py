"""A running stack's state directory, and the registry of running stacks.

Layout of ``<state dir>/``::

    plan.json          what to run (written by ``up``)
    state.json         live status per service (written by the supervisor on every change)
    events.jsonl       exits, restarts, health changes: one JSON object per line, wall-clock ``time``
    supervisor.lock    flock held by the supervisor for its whole life: liveness without pid races
    supervisor.log     the supervisor's own output
    control/           requests from the CLI (restart) and their answers
    logs/<svc>.log     each service's stdout and stderr
    <svc>/             each service's data (postgres data dir, redis dump, nginx prefix)

The registry (one small JSON file per running stack) lets ``resolve_service(None, ...)`` find
"the single running stack" and maps a stack file to a state directory given on the command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class StateDir:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.plan = self.root / "plan.json"
        self.state = self.root / "state.json"
        self.events = self.root / "events.jsonl"
        self.lock = self.root / "supervisor.lock"
        self.supervisor_log = self.root / "supervisor.log"
        self.control = self.root / "control"
        self.logs = self.root / "logs"

    def create(self) -> None:
        for d in (self.root, self.control, self.logs):
            d.mkdir(parents=True, exist_ok=True)

    def read_state(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.state.read_text())
            return data
        except (OSError, ValueError):
            return None

    def write_state(self, data: dict[str, Any]) -> None:
        tmp = self.state.with_name(f".state.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.state)

    def append_event(self, event: dict[str, Any]) -> None:
        # One write per line with O_APPEND: readers never see half an event.
        line = (json.dumps(event) + "\n").encode()
        fd = os.open(self.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def read_events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            text = self.events.read_text()
        except OSError:
            return out
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def supervisor_alive(self) -> bool:
        """True while a supervisor holds the lock (a dead one cannot, whatever its pid became)."""
        try:
            fd = os.open(self.lock, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def wait_supervisor_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.supervisor_alive():
                return True
            time.sleep(0.02)
        return not self.supervisor_alive()


# --- registry of running stacks -------------------------------------------------------------

def registry_dir() -> Path:
    env = os.environ.get("CHAOSLAB_STACK_REGISTRY")
    if env:
        return Path(env)
    if os.geteuid() == 0 and os.access("/run", os.W_OK):
        return Path("/run/chaoslab/stacks")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "chaoslab" / "stacks"
    return Path(f"/tmp/chaoslab-{os.geteuid()}/stacks")


def _entry_path(state_dir: Path) -> Path:
    return registry_dir() / (hashlib.sha1(str(state_dir).encode()).hexdigest()[:16] + ".json")


def register(name: str, stack_file: str, state_dir: Path) -> None:
    path = _entry_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"name": name, "stack_file": stack_file, "state_dir": str(state_dir)}))
    tmp.replace(path)


def unregister(state_dir: Path) -> None:
    with contextlib.suppress(OSError):
        _entry_path(state_dir).unlink()


def running() -> Iterator[dict[str, Any]]:
    """Registered stacks whose supervisor is alive; stale entries are removed on the way."""
    d = registry_dir()
    try:
        paths = sorted(d.glob("*.json"))
    except OSError:
        return
    for p in paths:
        try:
            entry: dict[str, Any] = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if StateDir(entry["state_dir"]).supervisor_alive():
            yield entry
        else:
            with contextlib.suppress(OSError):
                p.unlink()
