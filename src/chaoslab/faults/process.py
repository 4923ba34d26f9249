"""Process faults: kill, terminate, pause, crashloop, signal.

A target's processes are ``ProcessRef``s (pid + start time): a pid that was reused by another
process since the target was resolved is never signalled.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import psutil
from pydantic import Field, field_validator

from ..cgroups import Group
from ..errors import CapabilityError, FaultError
from ..targets import ProcessRef, ResolvedTarget
from ..units import MAX_SIGNAL, Duration
from . import register
from .base import Fault, FaultParams, NoParams, P

# parse_signal checks the name or number; this only shows the range in the schema
SIGNAL_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1, "maximum": MAX_SIGNAL}]}

PROCESS_TARGETS = frozenset({"pid", "process", "service"})


def _signal(ref: ProcessRef, sig: int) -> bool:
    """Send ``sig`` if ``ref`` still names the same process; True when sent."""
    if ref.process() is None:
        return False
    try:
        os.kill(ref.pid, sig)
        return True
    except ProcessLookupError:
        return False


def _live(target: ResolvedTarget | None) -> list[ProcessRef]:
    if target is None:
        return []
    return [ref for ref in target.processes if ref.alive()]


def _require_live(fault: Fault[Any]) -> list[ProcessRef]:
    refs = _live(fault.target)
    if not refs:
        what = fault.target.describe() if fault.target else "the target"
        raise FaultError(f"{fault.name}: {what} has no live process to act on")
    return refs


class _Instant(Fault[P]):
    """Faults that act once and have nothing to revert."""

    target_kinds = PROCESS_TARGETS
    reversible = False
    signum: ClassVar[int] = signal.SIGKILL

    def inject(self) -> None:
        sent = [ref.pid for ref in _require_live(self) if _signal(ref, self.signum)]
        self.state["signalled"] = sent


@register
class Kill(_Instant[NoParams]):
    name = "process.kill"
    summary = "Kill the target's processes with SIGKILL."


class SignalParams(FaultParams):
    signal: str | int = Field("SIGTERM", description="Signal name (SIGUSR1, HUP) or number.",
                              json_schema_extra=SIGNAL_SCHEMA)

    @field_validator("signal")
    @classmethod
    def _known(cls, v: str | int) -> str | int:
        parse_signal(v)
        return v


def parse_signal(value: str | int) -> signal.Signals:
    try:
        if isinstance(value, int):
            return signal.Signals(value)
        name = value.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        return signal.Signals[name]
    except (KeyError, ValueError):
        raise ValueError(f"unknown signal {value!r} (e.g. SIGTERM, HUP, 10)") from None


@register
class Signal(_Instant[SignalParams]):
    name = "process.signal"
    summary = "Send any signal to the target's processes."
    Params = SignalParams

    def inject(self) -> None:
        sig = parse_signal(self.params.signal)
        self.state["signalled"] = [ref.pid for ref in _require_live(self) if _signal(ref, sig)]


class TerminateParams(FaultParams):
    grace: Duration = Field(10.0, description="Time to wait for exit after SIGTERM before SIGKILL.")


@register
class Terminate(_Instant[TerminateParams]):
    name = "process.terminate"
    summary = "SIGTERM the target's processes, SIGKILL those still alive after a grace period."
    Params = TerminateParams

    def inject(self) -> None:
        refs = _require_live(self)
        procs = []
        for ref in refs:
            p = ref.process()
            if p is not None and _signal(ref, signal.SIGTERM):
                procs.append(p)
        _, alive = psutil.wait_procs(procs, timeout=self.params.grace)
        killed = []
        for p in alive:
            try:
                p.kill()
                killed.append(p.pid)
            except psutil.NoSuchProcess:
                pass
        self.state["terminated"] = [p.pid for p in procs]
        self.state["killed_after_grace"] = killed


class PauseParams(FaultParams):
    method: Literal["auto", "signal", "freezer"] = Field(
        "auto",
        description="signal: SIGSTOP/SIGCONT each process; freezer: freeze the target's own cgroup (all its "
        "processes, children too); auto: freezer when the target has a cgroup of its own.",
    )


@register
class Pause(Fault[PauseParams]):
    name = "process.pause"
    summary = "Pause the target (SIGSTOP, or the cgroup freezer when it has its own cgroup); resume on revert."
    Params = PauseParams
    target_kinds = PROCESS_TARGETS

    def _freezer_dirs(self) -> dict[str, str] | None:
        assert self.target is not None
        dirs = {c: d for c, d in self.target.cgroups.items() if c in ("freezer", "unified")}
        if self.params.method == "signal":
            return None
        if self.params.method == "freezer" and not dirs:
            raise CapabilityError(
                f"{self.target.describe()} has no cgroup of its own to freeze", instead="process.pause with method: signal"
            )
        # On a hybrid machine the v1 freezer is the one that holds every process of the service.
        if "freezer" in dirs:
            return {"freezer": dirs["freezer"]}
        return dirs or None

    def inject(self) -> None:
        refs = _require_live(self)
        dirs = self._freezer_dirs()
        if dirs:
            self.state["freezer"] = dirs
            self.checkpoint()
            Group(dirs={k: Path(v) for k, v in dirs.items()}).freeze()
            return
        self.state["stopped"] = [{"pid": r.pid, "create_time": r.create_time} for r in refs]
        self.checkpoint()
        for ref in refs:
            _signal(ref, signal.SIGSTOP)

    def revert(self) -> None:
        dirs = self.state.get("freezer")
        if dirs:
            group = Group(dirs={k: Path(v) for k, v in dirs.items()})
            if group.exists():
                group.thaw()
        for item in self.state.get("stopped", []):
            _signal(ProcessRef(int(item["pid"]), float(item["create_time"])), signal.SIGCONT)


class CrashloopParams(FaultParams):
    interval: Duration = Field(5.0, gt=0, description="Kill the target again this often while the fault lasts.")
    signal: str | int = Field("SIGKILL", description="Signal to send each time.", json_schema_extra=SIGNAL_SCHEMA)

    @field_validator("signal")
    @classmethod
    def _known(cls, v: str | int) -> str | int:
        parse_signal(v)
        return v


@register
class Crashloop(Fault[CrashloopParams]):
    name = "process.crashloop"
    summary = "Kill the target now and again every `interval` for the duration (it restarts by its policy)."
    Params = CrashloopParams
    target_kinds = PROCESS_TARGETS
    reversible = False
    needs_duration = True

    @property
    def interval(self) -> float:
        return self.params.interval

    def _kill(self) -> list[int]:
        sig = parse_signal(self.params.signal)
        return [ref.pid for ref in _live(self.target) if _signal(ref, sig)]

    def inject(self) -> None:
        _require_live(self)
        self.state["kills"] = [{"t": time.time(), "pids": self._kill()}]

    def tick(self) -> None:
        # A restarted service has a new pid: look the target up again before each kill.
        if self.target is not None and self.target.kind in ("service", "process"):
            try:
                self.target = self.target.refresh()
            except Exception:  # the service is between restarts: nothing to kill this time
                return
        self.state.setdefault("kills", []).append({"t": time.time(), "pids": self._kill()})
