"""A process's own clock, moved without touching the machine's (clock.skew, clock.drift).

libfaketime, preloaded into a process when it starts, answers its clock calls with true time
plus an offset read from a file (``FAKETIME_TIMESTAMP_FILE``); with ``FAKETIME_NO_CACHE=1`` it
reads the file on every call, so writing a new offset moves an already running process at once.
Only processes started under the preload can be moved: stack services opt in with
``clock: controllable``. Statically linked programs (Go) never call the C library for time and
are not affected. ``FAKETIME_DONT_FAKE_MONOTONIC`` stays unset: Python's ``time.sleep`` fails with
EINVAL when only the real-time clock is faked.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import CapabilityError, TargetError

_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
NO_OFFSET = "+0"


def library() -> Path:
    """Where libfaketime is, or ``CapabilityError`` with what to install."""
    for c in _CANDIDATES:
        if Path(c).is_file():
            return Path(c)
    raise CapabilityError("libfaketime is not installed (Debian package libfaketime)")


def controllable_env(offset_file: Path) -> dict[str, str]:
    """The environment that starts a program with a clock chaoslab can move."""
    return {
        "LD_PRELOAD": str(library()),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
    }


def ensure_file(offset_file: Path) -> None:
    """Create the offset file at true time; an existing one keeps its offset (a restarted
    service comes back with the clock it had)."""
    if not offset_file.exists():
        offset_file.parent.mkdir(parents=True, exist_ok=True)
        write_offset(offset_file, NO_OFFSET)


def offset_file_of(pid: int) -> Path | None:
    """The offset file a running process reads, when it was started under libfaketime."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
    if "libfaketime" not in env.get("LD_PRELOAD", "") or "FAKETIME_TIMESTAMP_FILE" not in env:
        return None
    return Path(env["FAKETIME_TIMESTAMP_FILE"])


def require_controllable(pid: int, what: str) -> Path:
    path = offset_file_of(pid)
    if path is None:
        raise TargetError(
            f"{what} (pid {pid}) was not started under libfaketime, so its clock cannot be moved: "
            "start it with `clock: controllable` in the stack file (or with chaoslab.system.faketime.controllable_env)"
        )
    return path


def read_offset(path: Path) -> str:
    try:
        return path.read_text().strip() or NO_OFFSET
    except FileNotFoundError:
        return NO_OFFSET


def write_offset(path: Path, offset: str | float) -> None:
    """Atomically: the process may read the file in the middle of our write."""
    text = offset if isinstance(offset, str) else f"{offset:+.6f}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


CONTAINER_HINT = (
    "start it with LD_PRELOAD=<libfaketime.so.1 as seen inside the container>, "
    "FAKETIME_TIMESTAMP_FILE=<a file in a writable bind-mounted host directory> and FAKETIME_NO_CACHE=1 "
    "(docs/clock.md)"
)


def container_offset_file(attrs: dict[str, Any], what: str) -> Path:
    """The host path of the offset file a container's processes read, from ``docker inspect``:
    its ``FAKETIME_TIMESTAMP_FILE`` mapped through its bind mounts. ``TargetError`` saying what is
    missing when the container was not started so that its clock can be moved."""
    name = str(attrs.get("Name") or attrs.get("Id", "?")).lstrip("/")
    env = dict(e.split("=", 1) for e in (attrs.get("Config") or {}).get("Env") or [] if "=" in e)
    refuse = f"{what}: container {name} "
    if "libfaketime" not in env.get("LD_PRELOAD", ""):
        raise TargetError(refuse + f"was not started under libfaketime (no LD_PRELOAD of it), so its clock "
                          f"cannot be moved: {CONTAINER_HINT}")
    inside = env.get("FAKETIME_TIMESTAMP_FILE", "")
    if not inside.startswith("/"):
        raise TargetError(refuse + f"has no absolute FAKETIME_TIMESTAMP_FILE: {CONTAINER_HINT}")
    if env.get("FAKETIME_NO_CACHE") != "1":
        raise TargetError(refuse + "lacks FAKETIME_NO_CACHE=1: its processes would not see a new offset "
                          f"until they restart; {CONTAINER_HINT}")
    pid = int((attrs.get("State") or {}).get("Pid") or 0)
    if pid > 0:
        try:
            loaded = "libfaketime" in Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            loaded = True  # gone meanwhile: the mounts still say where the file is
        if not loaded:
            raise TargetError(refuse + f"has LD_PRELOAD={env['LD_PRELOAD']} but its main process did not load "
                              "it (not a library inside the container, or a statically linked program)")
    file = PurePosixPath(inside)
    holding = [m for m in attrs.get("Mounts") or [] if m.get("Type") == "bind"
               and PurePosixPath(str(m.get("Destination") or "/-")) in (file, *file.parents)]
    best = max(holding, key=lambda m: len(str(m["Destination"])), default=None)  # the innermost mount
    if best is None:
        raise TargetError(refuse + f"reads its offset from {inside}, which is not on a bind-mounted host "
                          f"directory, so chaoslab cannot write it: {CONTAINER_HINT}")
    if not best.get("RW", True):
        raise TargetError(refuse + f"has {best['Destination']} mounted read-only; the offset file's directory "
                          "must be writable from the host")
    return Path(str(best["Source"])) / file.relative_to(PurePosixPath(str(best["Destination"])))
