"""Faults that run a hog process (stress-ng, or a built-in Python one) in the target's cgroup,
or system-wide without a target. The hog's identity goes into the ledger before it starts."""

from __future__ import annotations

from typing import ClassVar, Literal, TypeVar

from pydantic import Field

from ..system import capabilities
from ..targets import ResolvedTarget
from ..targets.base import CGROUPS
from ._hogs import comm_of, new_token, spawn, stop
from .base import Fault, FaultParams

Engine = Literal["auto", "stress-ng", "builtin"]


class HogParams(FaultParams):
    engine: Engine = Field("auto", description="stress-ng, the built-in hog, or auto (stress-ng when installed).")


def target_cgroup_dirs(target: ResolvedTarget | None, controller: str) -> list[str]:
    """Where a hog joins the target to compete with it (its platform knows), or nowhere."""
    if target is None:
        return []
    return target.platform.join_cgroups(target, controller)


HP = TypeVar("HP", bound=HogParams)


class HogFault(Fault[HP]):
    needs = frozenset({CGROUPS})
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
