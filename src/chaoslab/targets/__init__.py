"""Targets: what a fault or probe acts on, and how a name in an experiment becomes real pids.

A ``TargetSpec`` is what the user wrote (``{process: "nginx: worker", mode: all}``); a
``ResolvedTarget`` is what it meant at one instant: process references that survive pid reuse
(pid + start time), the target's own cgroups, ports, URL, proxy link, path. Resolved targets are
plain data so the fault ledger can store them and ``chaoslab recover`` can act on them later.

One spec module per platform (``local``, ``docker``, ``kubernetes``) holds its keys and registers
its kinds with their abilities (``base.KINDS``); the platform itself (chaoslab/platforms/) resolves
them and supplies the abilities (``resolved.Platform``). See docs/platforms.md.
"""

from .base import (
    KINDS,
    PLATFORMS,
    ProcessRef,
    TargetKind,
    kinds_able,
    register_kind,
    register_platform,
)
from .local import find_processes, own_cgroups, protected_pids, select, split_address
from .modes import parse_mode
from .resolved import EventRecorder, Platform, ResolvedTarget, platform_named, platforms, resolve
from .spec import TargetSpec, kind_keys

__all__ = [
    "KINDS", "PLATFORMS", "EventRecorder", "Platform", "ProcessRef", "ResolvedTarget", "TargetKind", "TargetSpec",
    "find_processes", "kind_keys", "kinds_able", "own_cgroups", "parse_mode", "platform_named", "platforms",
    "protected_pids", "register_kind", "register_platform", "resolve", "select", "split_address",
]
