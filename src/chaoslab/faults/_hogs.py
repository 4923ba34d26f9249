"""Hog processes (stress-ng, the built-in burner, connection holders) that a fault starts and stops.

A hog runs in its own session so that stopping it stops its workers too (one process group),
and so a Ctrl-C meant for the runner does not reach it before the runner has reverted. What
``stop`` needs is a plain dict (pid + start time), so ``chaoslab recover`` can stop a hog that
a killed runner started.

A runner can die after the hog was forked but before its pid reached the ledger. So each hog
also carries a token in its environment (``CHAOSLAB_HOG=<token>``, inherited by every worker
it forks) that the ledger holds *before* the spawn: ``stop`` ends every process carrying the
token, with or without a pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from ..errors import FaultError
from ..targets import ProcessRef

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Hogs started by this process, kept so they are reaped (no zombies) when stopped."""


def _join_cgroups(dirs: Sequence[str]) -> None:
    # Runs in the child between fork and exec: the hog never runs outside the cgroup.
    for d in dirs:
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


TOKEN_VAR = "CHAOSLAB_HOG"


def new_token() -> str:
    return uuid.uuid4().hex


def spawn(argv: Sequence[str], *, cgroup_dirs: Sequence[str] = (), env: dict[str, str] | None = None,
          stdout: Any = subprocess.DEVNULL, startup: float = 0.0, token: str | None = None) -> dict[str, Any]:
    """Start ``argv`` as a hog; returns the record ``stop`` needs. ``startup``: seconds during which
    an early exit is reported as a failure (e.g. stress-ng rejecting its arguments). ``token``
    (already in the ledger) marks the hog and its workers, so they are found without the pid."""
    dirs = list(cgroup_dirs)
    if token is not None:
        env = {**(os.environ if env is None else env), TOKEN_VAR: token}
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
            start_new_session=True, env=env,
            preexec_fn=(lambda: _join_cgroups(dirs)) if dirs else None,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise FaultError(f"cannot start {argv[0]}: {exc}") from None
    _children[proc.pid] = proc
    deadline = time.monotonic() + startup
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            _children.pop(proc.pid, None)
            if token is not None:
                _end_marked(token, 1.0)  # workers it forked before failing
            raise FaultError(f"{argv[0]} exited at once (code {proc.returncode}): {err[-300:]}")
        time.sleep(0.02)
    ref = ProcessRef.of(proc.pid)
    record = {"pid": ref.pid, "create_time": ref.create_time, "argv": list(argv)}
    return record if token is None else {**record, "token": token}


def running(record: dict[str, Any]) -> bool:
    return ProcessRef(int(record["pid"]), float(record["create_time"])).alive()


def comm_of(argv: Sequence[str]) -> str:
    """The kernel's name (comm, 15 characters) of a process started from ``argv``."""
    return Path(argv[0]).name[:15]


def marked(token: str, comm: str | None = None) -> list[psutil.Process]:
    """Live processes whose environment carries ``token`` (the hog and every worker it forked).
    ``comm`` narrows the scan first by name (read without touching the process's memory: reading
    the environment of an unrelated process stuck in memory reclaim can block for minutes)."""
    needle = f"{TOKEN_VAR}={token}".encode()
    out = []
    me = os.getpid()
    for p in psutil.process_iter():
        if p.pid == me:
            continue
        try:
            if comm and not p.name().startswith(comm):
                continue
            with open(f"/proc/{p.pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0") and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
        except (OSError, psutil.Error):
            continue
    return out


def _end_marked(token: str, grace: float, comm: str | None = None) -> None:
    procs = marked(token, comm)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.Error:
                continue
        deadline = time.monotonic() + wait
        while procs and time.monotonic() < deadline:
            time.sleep(0.02)
            procs = [p for p in procs if _running(p)]
        if not procs:
            return


def _running(p: psutil.Process) -> bool:
    """Alive and not a zombie (an orphaned hog's zombie waits for init, who may be slow to reap)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop(record: dict[str, Any], grace: float = 5.0) -> None:
    """SIGTERM the hog's process group (workers clean up), then SIGKILL; then anything else that
    carries its token. Idempotent."""
    token = record.get("token")
    if "pid" not in record:
        # The runner died between the spawn and writing the pid. A child still between fork and
        # exec carries the runner's environment, not the token, for a moment: look twice.
        if token:
            comm = record.get("comm")
            _end_marked(str(token), grace, comm)
            time.sleep(0.3)
            _end_marked(str(token), grace, comm)
        return
    _stop_pid(record, grace)
    if token:
        _end_marked(str(token), grace, comm_of(record["argv"]) if record.get("argv") else None)


def _stop_pid(record: dict[str, Any], grace: float) -> None:
    pid = int(record["pid"])
    ref = ProcessRef(pid, float(record["create_time"]))
    popen = _children.pop(pid, None)
    if ref.process() is not None:
        _killpg(pid, signal.SIGTERM)
        _wait_gone(ref, popen, grace)
        _killpg(pid, signal.SIGKILL)  # stragglers of the group
        _wait_gone(ref, popen, 2.0)
    if popen is not None:
        try:
            popen.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        for stream in (popen.stdout, popen.stderr):
            if stream:
                stream.close()


def _group_members(pgid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, psutil.Error):
            continue
    return out


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(ref: ProcessRef, popen: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            popen.poll()
        if not ref.alive() and not _group_members(ref.pid):
            return
        time.sleep(0.05)


def python_argv(code: str, *args: str) -> list[str]:
    """A tiny Python program as a hog (the built-in fallbacks when stress-ng is missing)."""
    import sys

    return [sys.executable, "-c", code, *args]


def temp_dir_for(path: str, run_id: str, what: str) -> Path:
    base = Path(path)
    if not base.is_dir():
        base = base.parent
    return base / f".chaoslab-{what}-{run_id}"
