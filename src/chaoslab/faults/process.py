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

from ..errors import CapabilityError, FaultError
from ..system.cgroups import Group
from ..targets import ProcessRef, ResolvedTarget
from ..targets.base import FOLLOWS_RESTARTS, PROCESSES
from ..units import MAX_SIGNAL, Duration
from . import register
from .base import Fault, FaultParams, NoParams, P
from .settings import HeldSettings, Setting, SettingGone

# parse_signal checks the name or number; this only shows the range in the schema
SIGNAL_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1, "maximum": MAX_SIGNAL}]}



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

    needs = frozenset({PROCESSES})
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

    def inject(self) -> None:
        sig = parse_signal(self.params.signal)
        self.state["signalled"] = [ref.pid for ref in _require_live(self) if _signal(ref, sig)]


class TerminateParams(FaultParams):
    grace: Duration = Field(10.0, description="Time to wait for exit after SIGTERM before SIGKILL.")


@register
class Terminate(_Instant[TerminateParams]):
    name = "process.terminate"
    summary = "SIGTERM the target's processes, SIGKILL those still alive after a grace period."

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
    needs = frozenset({PROCESSES})

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
        held = HeldSettings(self.state, self.run_id)
        if dirs:
            self.state["freezer"] = dirs
            self.checkpoint()
            held.hold(Frozen(dirs), True)
            return
        self.state["stopped"] = [{"pid": r.pid, "create_time": r.create_time} for r in refs]
        self.checkpoint()
        for ref in refs:
            try:
                held.hold(Stopped(ref), True)
            except SettingGone:
                continue

    def revert(self) -> None:
        if "owners" not in self.state:
            self._revert_unowned()
            return
        held = HeldSettings(self.state, self.run_id)
        dirs = self.state.get("freezer")
        if dirs:
            held.release(Frozen(dirs))
        for item in self.state.get("stopped", []):
            held.release(Stopped(ProcessRef(int(item["pid"]), float(item["create_time"]))))


    def _revert_unowned(self) -> None:
        """A ledger entry written before owner records: resume what it names."""
        dirs = self.state.get("freezer")
        if dirs:
            group = Group(dirs={k: Path(v) for k, v in dirs.items()})
            if group.exists():
                group.thaw()
        for item in self.state.get("stopped", []):
            _signal(ProcessRef(int(item["pid"]), float(item["create_time"])), signal.SIGCONT)


class Frozen(Setting):
    """Whether a cgroup is frozen: overlapping pauses of one service stack on it."""

    def __init__(self, dirs: dict[str, str]) -> None:
        self.group = Group(dirs={k: Path(v) for k, v in dirs.items()})

    @property
    def key(self) -> str:
        return f"frozen:{self.group.describe()}"

    def read(self) -> Any:
        if not self.group.exists():
            raise SettingGone(self.group.describe())
        return self.group.frozen()

    def write(self, value: Any) -> None:
        if not self.group.exists():
            raise SettingGone(self.group.describe())
        if value:
            self.group.freeze()
        else:
            self.group.thaw()


class Stopped(Setting):
    """Whether a process (pid + start time) is stopped by SIGSTOP: overlapping pauses stack on it."""

    def __init__(self, ref: ProcessRef) -> None:
        self.ref = ref

    @property
    def key(self) -> str:
        return f"stopped:{self.ref.pid}:{self.ref.create_time}"

    def read(self) -> Any:
        proc = self.ref.process()
        if proc is None:
            raise SettingGone(f"pid {self.ref.pid}")
        try:
            return proc.status() == psutil.STATUS_STOPPED
        except psutil.Error:
            raise SettingGone(f"pid {self.ref.pid}") from None

    def write(self, value: Any) -> None:
        if not _signal(self.ref, signal.SIGSTOP if value else signal.SIGCONT):
            raise SettingGone(f"pid {self.ref.pid}")


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
    needs = frozenset({PROCESSES})
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
        if self.target is not None and self.target.can(FOLLOWS_RESTARTS):
            try:
                self.target = self.target.refresh()
            except Exception:  # the service is between restarts: nothing to kill this time
                return
        self.state.setdefault("kills", []).append({"t": time.time(), "pids": self._kill()})
