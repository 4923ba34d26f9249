"""Targets on this host: processes (by pid, pattern or stack service), addresses and test hosts,
URLs, fault-proxy links, paths and cgroups. Their spec fields, their kinds, and the process
table's rules (protected pids, kernel threads, the blast radius); the ``local`` platform
(platforms/local.py) resolves them and supplies their abilities."""

from __future__ import annotations

import math
import os
import re

import psutil
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import TargetError
from ..units import PID_MAX_LIMIT, regex
from .base import (
    ADDRESS,
    CGROUPS,
    CLOCK,
    FILESYSTEM,
    FOLLOWS_RESTARTS,
    NETNS,
    PROCESSES,
    PROXY,
    RLIMITS,
    register_kind,
    register_platform,
)
from .modes import parse_mode


class LocalTargets(BaseModel):
    """The keys of local targets, and the options they take."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    pid: int | None = Field(None, gt=1, le=PID_MAX_LIMIT, description="A process id (never 1).")
    process: str | None = Field(None, description="Regular expression matched against the full command line.")
    service: str | None = Field(None, description="A service of the experiment's stack.")
    url: str | None = Field(None, description="An HTTP(S) endpoint.")
    proxy: str | None = Field(None, description="A link (proxy name) of the chaoslab/Toxiproxy fault proxy.")
    host: str | None = Field(None, description="A test host (network namespace) by name.")
    address: str | None = Field(None, description="An IP address (with `port`).")
    path: str | None = Field(None, description="A filesystem path (disk faults).")
    cgroup: str | None = Field(None, description="A cgroup path relative to the hierarchy root.")

    port: int | None = Field(None, ge=1, le=65535, description="Port for `address`/`host` targets.")
    api: str = Field("http://127.0.0.1:8474", description="Proxy API for `proxy` targets.")
    stack: str | None = Field(None, description="Stack file for `service` (default: the experiment's).")

    @field_validator("process")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        return regex(v)


_PROCESS = {PROCESSES, CGROUPS, CLOCK, RLIMITS}
register_kind("pid", "local", _PROCESS)
register_kind("process", "local", _PROCESS | {FOLLOWS_RESTARTS})
register_kind("service", "local", _PROCESS | {FOLLOWS_RESTARTS, ADDRESS})
register_kind("url", "local", ())
register_kind("proxy", "local", {PROXY})
register_kind("host", "local", {ADDRESS, NETNS})
register_kind("address", "local", {ADDRESS})
register_kind("path", "local", {FILESYSTEM})
register_kind("cgroup", "local", {CGROUPS})
register_platform("local", "chaoslab.platforms.local:PLATFORM")


# --- the process table -----------------------------------------------------------------------

def protected_pids() -> set[int]:
    """Processes no fault may touch: PID 1, this process, its ancestors, kernel threads' parent."""
    pids = {0, 1, 2, os.getpid()}
    try:
        for parent in psutil.Process().parents():
            pids.add(parent.pid)
    except psutil.Error:
        pass
    return pids


PF_KTHREAD = 0x00200000
"""The kernel's own mark of a kernel thread (include/linux/sched.h), in /proc/PID/stat's flags."""


def is_kernel_thread(p: psutil.Process) -> bool:
    # Not "an empty command line": a user process reads as one between fork and exec's new
    # argument area (and one may empty it), and resolving a just-spawned pid refused it.
    try:
        with open(f"/proc/{p.pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        raise psutil.NoSuchProcess(p.pid) from None
    except OSError:
        return False
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    fields = stat.rpartition(")")[2].split()
    try:
        return bool(int(fields[6]) & PF_KTHREAD)  # field 9, flags; fields[0] is field 3
    except (IndexError, ValueError):
        return False


def guard(pid: int, name: str) -> None:
    if pid in protected_pids():
        raise TargetError(f"target {name!r}: refusing pid {pid} (PID 1, the runner or one of its ancestors)")


def select(pids: list[int], mode: str, name: str, selector: str) -> list[int]:
    """Apply the blast radius. More matches than ``one`` allows is an error, not a surprise."""
    kind, n = parse_mode(mode)
    if not pids:
        raise TargetError(f"target {name!r}: no process matches {selector}")
    pids = sorted(pids)
    if kind == "one":
        if len(pids) > 1:
            shown = ", ".join(map(str, pids[:8]))
            raise TargetError(
                f"target {name!r}: {selector} matches {len(pids)} processes ({shown}) but mode is 'one'; "
                "narrow the pattern or set mode: all | count:N | percent:P"
            )
        return pids
    if kind == "all":
        return pids
    if kind == "count":
        if len(pids) < n:
            raise TargetError(f"target {name!r}: {selector} matches {len(pids)} processes, mode asks for {int(n)}")
        return pids[: int(n)]
    return pids[: max(1, math.ceil(len(pids) * n / 100.0))]


def find_processes(pattern: str) -> list[int]:
    rx = re.compile(pattern)
    protected = protected_pids()
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.pid in protected:
            continue
        cmd = " ".join(p.info.get("cmdline") or [])
        try:
            if not cmd or is_kernel_thread(p):
                continue
        except psutil.NoSuchProcess:
            continue
        if rx.search(cmd):
            out.append(p.pid)
    return out


def own_cgroups(pid: int) -> dict[str, str]:
    """The cgroups that belong to ``pid`` alone: not a hierarchy root, and holding only ``pid`` and
    its descendants (never the runner). Freezing or limiting such a cgroup touches nothing else."""
    from ..system import cgroups

    try:
        family = {pid} | {c.pid for c in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return {}
    protected = protected_pids()
    out = {}
    for ctrl, path in cgroups.cgroups_of(pid).items():
        if cgroups.is_root(path):
            continue
        try:
            members = {int(x) for x in (path / "cgroup.procs").read_text().split()}
        except (OSError, ValueError):
            continue
        if members <= family and not members & protected:
            out[ctrl] = str(path)
    return out


def split_address(address: str | None) -> tuple[str | None, int | None]:
    """``127.0.0.1:5433`` -> (``127.0.0.1``, 5433); ``[::1]:6379`` -> (``::1``, 6379); a bare IP stays."""
    if not address:
        return None, None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or (":" in host and not host.startswith("[")):
        return address, None  # a bare IPv4 or IPv6 address
    return host.strip("[]"), int(port)
