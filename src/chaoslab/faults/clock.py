"""Clock faults: ``clock.skew`` (jump a process's clock by an offset) and ``clock.drift`` (make it
run fast or slow), through libfaketime (see chaoslab/system/faketime.py). Chaos Mesh's TimeChaos and
Jepsen's clock nemesis do the same to a container or a node; the machine's own clock is never
touched. The offset file is one setting with one owner (faults/settings.py): overlapping clock
faults on it stack (the newest one's offset is in force) and the file gets back what it was
before the first of them, byte for byte, or goes again when there was none, once the last ends."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ..errors import TargetError
from ..system import capabilities, faketime
from ..targets.base import CLOCK
from ..units import MAX_DURATION, parse_duration, shown
from . import register
from .base import Fault, FaultParams, P
from .settings import HeldSettings, Setting, SettingGone

_SIGNED = re.compile(r"^\s*([+-])?\s*(.+)$")


def parse_offset(value: Any) -> float:
    """``-90s``, ``+2h``, ``1m30s`` or a number of seconds, either sign."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (-1.0 if value < 0 else 1.0) * parse_duration(abs(value))
    if isinstance(value, str) and (m := _SIGNED.match(value)):
        return (-1.0 if m.group(1) == "-" else 1.0) * parse_duration(m.group(2))
    raise ValueError(f"invalid offset {shown(value)} (expected e.g. -90s or +2h)")


class SkewParams(FaultParams):
    offset: float = Field(description="How far to move the clock: -90s, +2h (at most 7 days either way).",
                          ge=-MAX_DURATION, le=MAX_DURATION, json_schema_extra={"examples": ["-90s", "+2h"]})

    _offset = field_validator("offset", mode="before")(classmethod(lambda cls, v: parse_offset(v)))


class DriftParams(FaultParams):
    rate: float = Field(gt=0.0, le=100.0, description="Clock speed: 1.5 runs 50 % fast, 0.5 half speed.")

    @field_validator("rate")
    @classmethod
    def _moves(cls, v: float) -> float:
        if v == 1.0:
            raise ValueError("a rate of 1 does not move the clock")
        return v


class _ClockFault(Fault[P]):
    needs = frozenset({CLOCK})

    @classmethod
    def check(cls) -> None:
        capabilities.require("libfaketime")

    def _files(self) -> list[Path]:
        assert self.target is not None
        return self.target.platform.clock_files(self.target)

    def inject(self) -> None:
        files = self._files()
        self.state["files"] = [str(f) for f in files]
        self.state["since"] = time.time()
        held = HeldSettings(self.state, self.run_id)
        self.checkpoint()
        try:
            for f in files:
                held.hold(OffsetFile(f), self.value())
        except SettingGone as exc:
            self.revert()
            raise TargetError(f"{self.name}: the offset file's directory {exc} is gone") from None
        except BaseException:
            self.revert()
            raise

    def value(self) -> Any:
        """What this fault holds on each offset file (see ``OffsetFile.write``)."""
        raise NotImplementedError

    def revert(self) -> None:
        files = self.state.get("files") or []
        if "owners" in self.state:
            held = HeldSettings(self.state, self.run_id)
            for name in files:
                held.release(OffsetFile(name))
        elif isinstance(files, dict):  # a ledger entry written before the file had an owner
            for name, original in files.items():
                if Path(name).parent.is_dir():
                    faketime.write_offset(Path(name), original)


class OffsetFile(Setting):
    """A libfaketime offset file. Its value: ``None`` (no file: true time), a ``str`` (the file's
    text, exactly: what was there before), a number (an offset in seconds), or
    ``{"rate": r, "since": t}`` (a drift: the offset grows by ``r - 1`` seconds a second from
    ``t`` on, computed whenever it is written)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def key(self) -> str:
        return f"clock:{os.path.realpath(self.path)}"

    def read(self) -> Any:
        if not self.path.parent.is_dir():
            raise SettingGone(str(self.path.parent))
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None

    def write(self, value: Any) -> None:
        try:
            if value is None:
                self.path.unlink(missing_ok=True)
            elif isinstance(value, str):
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text(value)
                os.replace(tmp, self.path)
            elif isinstance(value, dict):
                offset = (float(value["rate"]) - 1.0) * (time.time() - float(value["since"]))
                faketime.write_offset(self.path, offset)
            else:
                faketime.write_offset(self.path, float(value))
        except FileNotFoundError:
            raise SettingGone(str(self.path.parent)) from None


@register
class ClockSkew(_ClockFault[SkewParams]):
    name = "clock.skew"
    summary = ("Move the target's own clock by an offset (libfaketime; a service starts with clock: controllable, "
               "a container with the preload in its environment).")

    def value(self) -> Any:
        return self.params.offset


@register
class ClockDrift(_ClockFault[DriftParams]):
    name = "clock.drift"
    summary = "Make the target's own clock run fast or slow from the injection on (libfaketime)."

    @property
    def interval(self) -> float | None:
        return 0.1

    def value(self) -> Any:
        return {"rate": self.params.rate, "since": self.state["since"]}

    def tick(self) -> bool:
        # libfaketime's own speed factor counts from the process's start, not from the
        # injection, so the drift is an offset that grows, rewritten ten times a second
        # (only while it is the newest clock fault on the file: a newer one's offset rules).
        if "owners" not in self.state:
            return False
        held = HeldSettings(self.state, self.run_id)
        acted = False
        for name in self.state.get("files") or []:
            with contextlib.suppress(SettingGone):
                acted = held.reapply(OffsetFile(name)) or acted
        return acted
