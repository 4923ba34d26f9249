"""The Python API of the local stack: what the CLI, the runner and the pytest plugin call.

    stack = Stack.load("stack.yaml")
    stack.up()                      # returns when every service is healthy; a supervisor stays
    stack.resolve("db")["dsn"]
    stack.down()

    with Stack.load("stack.yaml") as stack:   # up on enter, down on exit
        ...
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import TargetError
from . import build, state
from .errors import StackError
from .netns import inside
from .plan import StackPlan

DEFAULT_TIMEOUT = 120.0


class Stack:
    def __init__(self, loaded: build.Loaded, state_dir: Path) -> None:
        self.loaded = loaded
        self.dir = state.StateDir(state_dir)

    @classmethod
    def load(cls, path: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None) -> Stack:
        loaded = build.load(path)
        if state_dir is not None:
            return cls(loaded, Path(state_dir).absolute())
        for entry in state.running():
            if entry["stack_file"] == str(loaded.path):
                return cls(loaded, Path(entry["state_dir"]))
        return cls(loaded, loaded.default_state_dir().absolute())

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def file(self) -> str:
        return str(self.loaded.path)

    def __enter__(self) -> Stack:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def is_up(self) -> bool:
        st = self.dir.read_state()
        return bool(st and st.get("status") == "up" and self.dir.supervisor_alive())

    # -- up ----------------------------------------------------------------------------------
    def up(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Start every service in dependency order and return the state once all are healthy."""
        if self.dir.supervisor_alive():
            return self._wait_up(time.monotonic() + timeout)
        stale = self.dir.read_state()
        if stale is not None and stale.get("status") not in ("down", "failed"):
            _sweep(stale)  # a supervisor killed -9 left its services holding their ports
        plan = build.make_plan(self.loaded, self.dir.root)
        check_ports(plan)
        build.prepare(plan, self.loaded)
        self.dir.state.unlink(missing_ok=True)
        for leftover in self.dir.control.glob("*"):
            leftover.unlink(missing_ok=True)
        with open(self.dir.supervisor_log, "ab") as log:
            subprocess.run(
                [sys.executable, "-m", "chaoslab.stack.supervisor", "--state-dir", str(self.dir.root), "--daemonize"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd="/",
                start_new_session=True, check=True, timeout=60,
            )
        return self._wait_up(time.monotonic() + timeout)

    def _wait_up(self, deadline: float) -> dict[str, Any]:
        spawned = time.monotonic()
        while True:
            st = self.dir.read_state()
            if st is not None:
                if st["status"] == "up":
                    return st
                if st["status"] in ("failed", "down", "stopping"):
                    self.dir.wait_supervisor_gone(30)
                    raise StackError(f"stack {self.name}: {st.get('error') or 'stopped while starting'}")
            elif time.monotonic() - spawned > 15 and not self.dir.supervisor_alive():
                raise StackError(f"stack {self.name}: the supervisor did not start{_tail(self.dir.supervisor_log)}")
            if time.monotonic() > deadline:
                waiting = _not_ready(st)
                self.down()
                raise StackError(f"stack {self.name}: timed out waiting for {waiting}; the stack was stopped "
                                 f"(logs in {self.dir.logs})")
            time.sleep(0.02)

    # -- down ----------------------------------------------------------------------------------
    def down(self, timeout: float = 60.0, purge: bool = False) -> None:
        """Stop every service (stop signal, then SIGKILL after its grace), remove the cgroups."""
        st = self.dir.read_state()
        if self.dir.supervisor_alive() and st is not None:
            pid = int(st["supervisor"]["pid"])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
            if not self.dir.wait_supervisor_gone(timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
                self.dir.wait_supervisor_gone(5)
        st = self.dir.read_state()
        if st is not None:
            _sweep(st)  # a supervisor killed -9 leaves its services behind; clean up after it
        state.unregister(self.dir.root)
        if purge:
            shutil.rmtree(self.dir.root, ignore_errors=True)

    # -- inspection ------------------------------------------------------------------------------
    def ps(self) -> dict[str, Any]:
        st = self.dir.read_state()
        if st is None:
            return {"name": self.name, "status": "down", "services": {}}
        if st.get("status") not in ("down", "failed") and not self.dir.supervisor_alive():
            st["status"] = "supervisor-dead"
        return st

    def resolve(self, service: str) -> dict[str, Any]:
        st = self.dir.read_state()
        if st is None or st.get("status") not in ("up", "starting") or not self.dir.supervisor_alive():
            raise TargetError(f"stack {self.name} is not up (run `chaoslab stack up {self.file}`)")
        services: dict[str, Any] = st["services"]
        if service not in services:
            raise TargetError(f"stack {self.name} has no service {service!r} (services: {', '.join(services)})")
        info = dict(services[service])
        info.update(service=service, stack=self.name, stack_file=self.file, state_dir=str(self.dir.root))
        for key in ("pid", "create_time", "data_dir", "address"):
            info.setdefault(key, None)
        info.setdefault("ports", [])
        info.setdefault("cgroups", {})
        return info

    def events(self, start: float = 0.0, end: float = float("inf")) -> list[dict[str, Any]]:
        return [e for e in self.dir.read_events() if start <= float(e.get("time", 0)) <= end]

    def logs(self, service: str | None = None, lines: int = 50) -> str:
        st = self.dir.read_state() or {}
        services = st.get("services") or {}
        names = [service] if service else list(services)
        if service and service not in services and service not in self.loaded.model.services:
            raise StackError(f"stack {self.name} has no service {service!r}")
        out = []
        for n in names:
            path = Path(services.get(n, {}).get("log") or self.dir.logs / f"{n}.log")
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                text = []
            prefix = f"{n} | " if len(names) > 1 else ""
            out += [prefix + ln for ln in text]
        return "\n".join(out)

    def restart(self, services: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Stop and start services through the supervisor (not counted against restart limits)."""
        if not self.dir.supervisor_alive():
            raise StackError(f"stack {self.name} is not up (run `chaoslab stack up {self.file}`)")
        known = (self.dir.read_state() or {}).get("services", {})
        for s in services or []:
            if s not in known:
                raise StackError(f"stack {self.name} has no service {s!r} (services: {', '.join(known)})")
        req = self.dir.control / f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.json"
        tmp = req.with_suffix(".tmp")
        tmp.write_text(json.dumps({"op": "restart", "services": services}))
        tmp.replace(req)
        done = req.with_suffix(".done")
        deadline = time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > deadline or not self.dir.supervisor_alive():
                raise StackError(f"stack {self.name}: the supervisor did not answer the restart request")
            time.sleep(0.02)
        reply = json.loads(done.read_text())
        done.unlink(missing_ok=True)
        if not reply.get("ok"):
            raise StackError(f"stack {self.name}: {reply.get('error')}")
        while True:
            st = self.dir.read_state() or {}
            pending = [n for n in (services or list(known))
                       if st.get("services", {}).get(n, {}).get("health") not in ("healthy", "none")
                       or st["services"][n].get("status") != "running"]
            if not pending:
                return st
            if time.monotonic() > deadline:
                raise StackError(f"stack {self.name}: timed out waiting for {', '.join(pending)} after restart")
            time.sleep(0.02)


def check_ports(plan: StackPlan) -> None:
    """A port already taken is one clear error naming the holder, before anything starts."""
    for name, sp in plan.services.items():
        host = str(sp.info.get("address", "127.0.0.1:0")).rpartition(":")[0] or "127.0.0.1"
        for port in sp.ports:
            with inside(sp.netns):
                busy = port_in_use(host, port)
            if busy:
                raise StackError(f"service {name!r}: port {port} is already in use{_holder(port)}; "
                                 "choose another port or stop that process")


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _holder(port: int) -> str:
    import psutil

    with contextlib.suppress(psutil.Error, OSError):
        for c in psutil.net_connections("tcp"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                with contextlib.suppress(psutil.Error):
                    return f" (by pid {c.pid}, {psutil.Process(c.pid).name()})"
                return f" (by pid {c.pid})"
    return ""


def _not_ready(st: dict[str, Any] | None) -> str:
    if not st:
        return "the supervisor"
    parts = []
    for n, s in st.get("services", {}).items():
        if s.get("status") != "running" or s.get("health") not in ("healthy", "none"):
            detail = s.get("last_check") or s.get("status")
            parts.append(f"{n!r} ({s.get('status')}, health {s.get('health')}: {detail})")
    return ", ".join(parts) or "the stack"


def _sweep(st: dict[str, Any]) -> None:
    """Kill what a dead supervisor left and remove its cgroups (pid + start time, never a stranger)."""
    import psutil

    from ..system.cgroups import Group, prune
    from .process import kill_leftovers

    stack_dirs: set[Path] = set()
    for s in st.get("services", {}).values():
        group = Group(dirs={c: Path(d) for c, d in (s.get("cgroups") or {}).items()}) if s.get("cgroups") else None
        pid = s.get("pid")
        if pid and s.get("create_time"):
            try:
                p = psutil.Process(int(pid))
                if abs(p.create_time() - float(s["create_time"])) < 0.01:
                    kill_leftovers(int(pid), group)
            except psutil.Error:
                pass
        if group is not None:
            kill_leftovers(None, group)
            stack_dirs.update(d.parent for d in group.dirs.values())
            group.remove()
    prune(stack_dirs, levels=2)  # the stack's group, then the shared chaoslab-stack if it is empty


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:200]}" if lines else ""


# --- the contract the runner and targets rely on ------------------------------------------------

def _find(stack_file: str | None) -> Stack | None:
    if stack_file is not None:
        return Stack.load(stack_file)
    entries = list(state.running())
    if not entries:
        return None
    if len(entries) > 1:
        names = ", ".join(f"{e['name']} ({e['stack_file']})" for e in entries)
        raise TargetError(f"{len(entries)} stacks are up ({names}); name the stack file (stack: FILE)")
    return Stack.load(entries[0]["stack_file"], entries[0]["state_dir"])


def resolve_service(stack_file: str | None, service: str) -> dict[str, Any]:
    stack = _find(stack_file)
    if stack is None:
        raise TargetError(f"service {service!r}: no stack is up (run `chaoslab stack up FILE`)")
    return stack.resolve(service)


def events_between(stack_file: str | None, wall_start: float, wall_end: float) -> list[dict[str, Any]]:
    stack = _find(stack_file)
    return [] if stack is None else stack.events(wall_start, wall_end)
