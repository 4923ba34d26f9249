"""What every platform's targets share, below the spec: the kinds registry, the abilities a fault
may need, and a process identity.

A kind (``pid``, ``container``, ``pod``...) is registered once, by its platform's spec module, with
the abilities a target of that kind offers and the platform that supplies them. A fault declares
the abilities it needs; the kinds it accepts follow (``kinds_able``). At run time the fault asks
``target.platform`` (targets/resolved.py) for what it needs, so no fault tests a target's kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from ..registry import Registry

# --- abilities -------------------------------------------------------------------------------
# What a resolved target can offer a fault; a fault's ``needs`` names some of them.
PROCESSES = "processes"
"""Its processes (pid + start time): to signal, stop, kill."""
CGROUPS = "cgroups"
"""Cgroups to set limits on (its own, or a fault cgroup its processes move into), or to join."""
CLOCK = "clock"
"""libfaketime offset files that move its clock (``Platform.clock_files``)."""
RLIMITS = "rlimits"
"""Processes of this host whose resource limits prlimit(2) can change from here."""
ADDRESS = "address"
"""An IP address (and the network namespace holding it) that nftables rules can match."""
NETNS = "netns"
"""A network namespace of its own whose interfaces tc can shape."""
FILESYSTEM = "filesystem"
"""A path on this host: a directory, or a container's root filesystem."""
CONTAINERS = "containers"
"""Containers of the local Docker engine (``extra["containers"]``): Docker's pause, stop, kill."""
FOLLOWS_RESTARTS = "follows_restarts"
"""Resolving its spec again finds it after a restart (a new pid): crashloop kills the new one."""
PROXY = "proxy"
"""A link of the fault proxy."""
PODS = "pods"
"""Pods of a Kubernetes cluster (through its API)."""
DEPLOYMENT = "deployment"
"""A Kubernetes deployment."""
NODE = "node"
"""A Kubernetes node."""


@dataclass(frozen=True)
class TargetKind:
    """One key of a ``targets:`` entry, registered by its platform's spec module."""

    name: str
    platform: str
    """The ``PLATFORMS`` entry that resolves targets of this kind and supplies their abilities."""
    abilities: frozenset[str] = frozenset()


KINDS: Registry[TargetKind] = Registry("target kind")
"""Every target kind, by name."""


def register_kind(name: str, platform: str, abilities: Iterable[str]) -> TargetKind:
    return KINDS.add(name, TargetKind(name, platform, frozenset(abilities)))


PLATFORMS: Registry[object] = Registry("platform")
"""Every platform (a ``targets.resolved.Platform``), by name. The spec modules name theirs
lazily (``module:PLATFORM``), so a platform's SDK loads only when one of its targets is resolved
or acted on; ``resolved.platform_named`` gives them typed."""


def register_platform(name: str, path: str) -> None:
    """Name the platform object at ``module:attr`` (imported on first use)."""
    PLATFORMS.lazy(name, path)


def kinds_able(needs: frozenset[str]) -> frozenset[str]:
    """The kinds whose targets offer every ability in ``needs``."""
    return frozenset(k for k in KINDS.names() if needs <= KINDS.get(k).abilities)


# --- a process identity ----------------------------------------------------------------------

@dataclass(frozen=True)
class ProcessRef:
    """A process identity that survives pid reuse: pid plus its start time (psutil ``create_time``)."""

    pid: int
    create_time: float
    name: str = ""

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        p = psutil.Process(pid)
        return cls(pid=pid, create_time=p.create_time(), name=p.name())

    def process(self) -> psutil.Process | None:
        """The live process, or None if it exited or its pid now belongs to another process."""
        try:
            p = psutil.Process(self.pid)
            if abs(p.create_time() - self.create_time) > 0.01:
                return None
            return p
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None

    def alive(self) -> bool:
        p = self.process()
        if p is None:
            return False
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
