"""What this machine can do: the capability checks behind ``chaoslab doctor`` and every ``Fault.check()``.

A leaf module (it imports only ``cgroups`` and ``errors``): faults, hosts and observe call it,
and the ``doctor`` command (which also reads the fault table) sits above them all.

One check per capability (root, a cgroup controller, nft, a tc qdisc kind, ...). Faults call
``require("root", "cgroup.cpu")``, which raises ``CapabilityError`` with the same sentence the
doctor prints, so a refusal always reads the same wherever it comes from.

Checks are cheap (a ``which``, a file read, or one probe in a throw-away network namespace) and
cached per process, so ``chaoslab doctor`` takes a few tens of milliseconds.

Tests simulate a missing capability here, at the check layer, never by mocking the kernel:
``CHAOSLAB_DOCTOR_DENY=root,tc.netem`` makes those checks fail with their usual reason.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CapabilityError
from . import cgroups

DENY_ENV = "CHAOSLAB_DOCTOR_DENY"
"""Comma-separated check names to report as missing (simulation for tests and demos)."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    """What was found when ok, otherwise the reason (one sentence)."""
    instead: str | None = None
    """What to use instead when the capability is missing."""


# --- the individual checks ------------------------------------------------------------------

def _which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found is None:
        # Tools installed into the virtualenv (py-spy) sit next to the interpreter.
        candidate = Path(sys.executable).parent / tool
        found = str(candidate) if candidate.exists() else None
    return found


def _root() -> Check:
    if os.geteuid() == 0:
        return Check("root", True, "running as root")
    return Check("root", False, "not running as root (cgroups, nftables, tc and namespaces need it)",
                 "sudo chaoslab ..., or the fault proxy for network faults")


def _cgroup(controller: str) -> Callable[[], Check]:
    def check() -> Check:
        name = f"cgroup.{controller}"
        try:
            root, version = cgroups.where(controller)
        except CapabilityError as exc:
            return Check(name, False, exc.reason)
        return Check(name, True, f"cgroup v{version} at {root}")

    return check


def _cgroup_layout() -> Check:
    m = cgroups.mounts()
    v1 = sorted(k for k in m if k != cgroups.V2)
    if not m:
        return Check("cgroup", False, "no cgroup filesystem is mounted")
    if v1 and cgroups.V2 in m:
        layout = f"hybrid: v1 ({', '.join(v1)}) and v2 at {m[cgroups.V2]}"
    elif v1:
        layout = f"v1 ({', '.join(v1)})"
    else:
        layout = f"v2 at {m[cgroups.V2]} ({', '.join(sorted(cgroups.v2_controllers())) or 'no controllers'})"
    return Check("cgroup", True, layout)


def _tool(tool: str, why: str, instead: str | None = None) -> Callable[[], Check]:
    def check() -> Check:
        path = _which(tool)
        if path:
            return Check(tool, True, path)
        return Check(tool, False, f"{tool} is not installed ({why})", instead)

    return check


def _nft() -> Check:
    path = _which("nft")
    if not path:
        return Check("nft", False, "nft is not installed (Debian package nftables)", "the fault proxy")
    if os.geteuid() != 0:
        return Check("nft", False, "nft needs root", "the fault proxy")
    proc = subprocess.run([path, "list", "tables"], capture_output=True, text=True, timeout=5)
    if proc.returncode != 0:
        return Check("nft", False, f"nft does not work here: {proc.stderr.strip()}", "the fault proxy")
    return Check("nft", True, path)


@functools.cache
def _probe_qdisc(kind: str) -> tuple[bool, str]:
    """Add a qdisc of ``kind`` to the loopback of a throw-away network namespace."""
    tc, unshare = _which("tc"), _which("unshare")
    if not tc or not unshare:
        return False, "tc (iproute2) or unshare (util-linux) is not installed"
    if os.geteuid() != 0:
        return False, "probing tc qdiscs needs root"
    args = {"tbf": ["rate", "1mbit", "burst", "32kbit", "latency", "50ms"], "netem": ["delay", "1ms"]}[kind]
    proc = subprocess.run([unshare, "-n", tc, "qdisc", "add", "dev", "lo", "root", kind, *args],
                          capture_output=True, text=True, timeout=5)
    if proc.returncode == 0:
        return True, f"the {kind} qdisc works"
    err = proc.stderr.strip().splitlines()
    first = err[0].removeprefix("Error: ").rstrip(".") if err else "failed"
    return False, f"the kernel has no {kind} qdisc (tc: {first})"


def _qdisc(kind: str, instead: str | None) -> Callable[[], Check]:
    def check() -> Check:
        ok, detail = _probe_qdisc(kind)
        return Check(f"tc.{kind}", ok, detail, None if ok else instead)

    return check


def _netns() -> Check:
    if not _which("ip"):
        return Check("netns", False, "ip (iproute2) is not installed")
    if os.geteuid() != 0:
        return Check("netns", False, "network namespaces need root")
    if not Path("/proc/self/ns/net").exists():
        return Check("netns", False, "the kernel has no network namespaces")
    ok, _ = _probe_qdisc("tbf")  # the probe runs in a fresh namespace: it proves unshare -n works
    if not ok and _which("unshare"):
        proc = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=5)
        if proc.returncode != 0:
            return Check("netns", False, f"cannot create a network namespace: {proc.stderr.strip()}")
    return Check("netns", True, "network namespaces and veth")


def _tracefs() -> Check:
    for base in (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing")):
        if (base / "events").is_dir():
            return Check("tracefs", True, str(base))
    return Check("tracefs", False, "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")


def _kprobes() -> Check:
    for base in (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing")):
        if (base / "events").is_dir():
            if (base / "kprobe_events").exists():
                return Check("kprobes", True, str(base / "kprobe_events"))
            return Check("kprobes", False, "the kernel has no kprobes", "bpftrace tracepoints")
    return Check("kprobes", False, "unknown: tracefs is not mounted", "bpftrace tracepoints")


def _docker() -> Check:
    path = _which("docker")
    if not path:
        return Check("docker", False, "docker is not installed (Debian package docker.io)",
                     "the local process stack")
    sock = Path("/var/run/docker.sock")
    if not sock.exists():
        return Check("docker", False, "the Docker engine is not running (start it with dockerd &)",
                     "the local process stack")
    try:
        info = _docker_info(sock)
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        return Check("docker", False, f"the Docker engine does not answer ({why}); start it with scripts/docker.sh",
                     "the local process stack")
    return Check("docker", True, f"Docker {info.get('ServerVersion')} at {sock}: storage {info.get('Driver')}, "
                 f"{info.get('CgroupDriver')} cgroup driver, cgroup v{info.get('CgroupVersion')}")


def _docker_info(sock: Path) -> dict[str, Any]:
    """``GET /info`` of the Engine API over its socket: a few ms, no SDK import (doctor stays fast)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2.0)
        s.connect(str(sock))
        s.sendall(b"GET /info HTTP/1.0\r\nHost: docker\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise ValueError(head.split(b"\r\n", 1)[0].decode(errors="replace") or "no answer")
    info = json.loads(body)
    if not isinstance(info, dict):
        raise ValueError("unexpected /info answer")
    return info


def _asyncpg() -> Check:
    import importlib.util

    if importlib.util.find_spec("asyncpg") is None:
        return Check("asyncpg", False, "the Python package asyncpg is not installed")
    return Check("asyncpg", True, "asyncpg importable")


def _prlimit() -> Check:
    import resource

    if not hasattr(resource, "prlimit"):
        return Check("prlimit", False, "this platform has no prlimit(2)")
    if os.geteuid() != 0:
        return Check("prlimit", False, "changing another process's limits needs root")
    return Check("prlimit", True, "prlimit(2)")


def _libfaketime() -> Check:
    from . import faketime

    try:
        path = faketime.library()
    except CapabilityError as exc:
        return Check("libfaketime", False, exc.reason)
    return Check("libfaketime", True, f"{path}: moves the clocks of dynamically linked programs started with "
                                      "clock: controllable; statically linked ones (Go) are not affected")


CHECKS: dict[str, Callable[[], Check]] = {
    "root": _root,
    "cgroup": _cgroup_layout,
    "cgroup.cpu": _cgroup("cpu"),
    "cgroup.memory": _cgroup("memory"),
    "cgroup.pids": _cgroup("pids"),
    "cgroup.blkio": _cgroup("blkio"),
    "cgroup.freezer": _cgroup("freezer"),
    "nft": _nft,
    "iptables": _tool("iptables", "Debian package iptables"),
    "tc": _tool("tc", "Debian package iproute2"),
    "tc.tbf": _qdisc("tbf", "the proxy's network.bandwidth"),
    "tc.netem": _qdisc("netem", "network.latency (the fault proxy)"),
    "netns": _netns,
    "bpftrace": _tool("bpftrace", "Debian package bpftrace"),
    "tracefs": _tracefs,
    "kprobes": _kprobes,
    "libfaketime": _libfaketime,
    "stress-ng": _tool("stress-ng", "Debian package stress-ng", "the built-in burner"),
    "py-spy": _tool("py-spy", "pip install py-spy"),
    "docker": _docker,
    "prlimit": _prlimit,
    "asyncpg": _asyncpg,
}


def denied() -> set[str]:
    return {x.strip() for x in os.environ.get(DENY_ENV, "").split(",") if x.strip()}


@functools.cache
def _run(name: str) -> Check:
    return CHECKS[name]()


def check(name: str) -> Check:
    """Result of one check (cached per process; the deny list is read every time)."""
    if name not in CHECKS:
        raise KeyError(f"unknown capability check {name!r}")
    if name in denied():
        return _simulated(name)
    return _run(name)


_SIMULATED_REASON = {
    "root": "not running as root (cgroups, nftables, tc and namespaces need it)",
    "tc.netem": "the kernel has no netem qdisc (tc: Specified qdisc kind is unknown)",
    "tc.tbf": "the kernel has no tbf qdisc (tc: Specified qdisc kind is unknown)",
}


def _simulated(name: str) -> Check:
    real = _run(name)
    if not real.ok:
        return real
    if name in _SIMULATED_REASON:
        reason = _SIMULATED_REASON[name]
    elif name.startswith("cgroup."):
        reason = f"the cgroup '{name[7:]}' controller is not available"
    else:
        reason = f"{name} is not available"
    instead = {"root": "sudo chaoslab ..., or the fault proxy for network faults",
               "tc.netem": "network.latency (the fault proxy)",
               "nft": "the fault proxy"}.get(name)
    return Check(name, False, f"{reason} (simulated by {DENY_ENV})", instead)


def require(*names: str, instead: str | None = None) -> None:
    """Raise the doctor's ``CapabilityError`` for the first missing capability."""
    for name in names:
        result = check(name)
        if not result.ok:
            raise CapabilityError(result.detail, instead or result.instead)


def run_all() -> list[Check]:
    return [check(name) for name in CHECKS]


__all__ = ["CHECKS", "DENY_ENV", "Check", "check", "denied", "require", "run_all"]
