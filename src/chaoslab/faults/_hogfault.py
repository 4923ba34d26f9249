"""Faults that run a hog process (stress-ng, or a built-in Python one) in the target's cgroup,
or system-wide without a target. The hog's identity goes into the ledger before it starts."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from pydantic import Field

from .. import capabilities, cgroups
from ..cgroups import Group
from ..errors import FaultError
from ..platforms.docker_spec import LOCAL_CONTAINER_KINDS, no_local_container
from ..targets import ResolvedTarget
from ._cgroupfault import CGROUP_TARGETS
from ._hogs import comm_of, new_token, spawn, stop
from .base import Fault, FaultParams

Engine = Literal["auto", "stress-ng", "builtin"]


class HogParams(FaultParams):
    engine: Engine = Field("auto", description="stress-ng, the built-in hog, or auto (stress-ng when installed).")


def target_cgroup_dirs(target: ResolvedTarget | None, controller: str) -> list[str]:
    """The target's own cgroup for ``controller`` (a hog placed there competes with the target)."""
    if target is None:
        return []
    if target.kind in LOCAL_CONTAINER_KINDS:
        # Every controller of the container: the hog is one of its processes, so Docker's CPU,
        # memory, pids and blkio limits apply to it as to the container's own (Pumba's stress sidecar).
        if not target.cgroups and not target.extra.get("containers"):
            raise FaultError(no_local_container(target))
        if not target.cgroups:
            raise FaultError(f"a hog joins one container at a time ({target.describe()}); use mode: one")
        return list(target.cgroups.values())
    if target.kind == "cgroup":
        rel = target.cgroups.get("*") or str(target.spec.get("cgroup", ""))
        return [str(d) for d in Group(rel, controllers=[controller]).dirs.values()]
    dirs: dict[str, Path] = {k: Path(v) for k, v in target.cgroups.items()}
    # A process moved into a fault cgroup it shares with a hog has no "own" cgroup for that
    # controller any more: look where it is now instead of falling back to another hierarchy.
    if controller not in dirs:
        live = [r for r in target.processes if r.alive()]
        if not live:
            raise FaultError(f"{target.describe()} has no live process to share a cgroup with")
        dirs = cgroups.cgroups_of(live[0].pid)
    d = dirs.get(controller) or dirs.get(cgroups.V2)
    return [str(d)] if d is not None else []


HP = TypeVar("HP", bound=HogParams)


class HogFault(Fault[HP]):
    target_kinds = CGROUP_TARGETS
    target_optional = True
    controller: ClassVar[str]
    """The cgroup controller whose group the hog joins (it competes there with the target)."""

    @classmethod
    def check(cls) -> None:
        capabilities.require("root")

    def stress_ng_argv(self) -> list[str]:
        raise NotImplementedError

    def builtin_argv(self) -> list[str]:
        raise NotImplementedError

    def inject(self) -> None:
        engine = self.params.engine
        if engine == "stress-ng" or (engine == "auto" and capabilities.check("stress-ng").ok):
            capabilities.require("stress-ng")
            argv = self.stress_ng_argv()
        else:
            argv = self.builtin_argv()
        dirs = target_cgroup_dirs(self.target, self.controller)
        token = new_token()
        self.state["hog"] = {"pending": True, "token": token, "comm": comm_of(argv)}
        self.checkpoint()
        self.state["hog"] = spawn(argv, cgroup_dirs=dirs, startup=0.2, token=token)
        self.checkpoint()

    def revert(self) -> None:
        hog = self.state.get("hog")
        if hog and ("pid" in hog or "token" in hog):
            stop(hog)
