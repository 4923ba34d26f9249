"""Clock faults: ``clock.skew`` (jump a process's clock by an offset) and ``clock.drift`` (make it
run fast or slow), through libfaketime (see chaoslab/clock.py). Chaos Mesh's TimeChaos and
Jepsen's clock nemesis do the same to a container or a node; the machine's own clock is never
touched. Reverted to true time: the offset file gets back what it held before."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from .. import capabilities, clock
from ..errors import TargetError
from ..units import MAX_DURATION, parse_duration, shown
from . import register
from .base import Fault, FaultParams, P

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
    target_kinds = frozenset({"process", "pid", "service", "container", "compose"})

    @classmethod
    def check(cls) -> None:
        capabilities.require("libfaketime")

    def _files(self) -> list[Path]:
        assert self.target is not None
        files: dict[str, Path] = {}
        if self.target.kind in ("container", "compose"):
            return self._container_files()
        for ref in self.target.processes:
            path = clock.require_controllable(ref.pid, f"target {self.target.name!r}")
            files[str(path)] = path
        return list(files.values())

    def _container_files(self) -> list[Path]:
        # The offset file is found through the container's mounts, on the host: it stays
        # writable while the container is stopped, so a revert or recover never depends on it.
        from ..platforms import docker

        assert self.target is not None
        files: dict[str, Path] = {}
        for info in docker.containers_of(self.target):
            container = docker.get(info.id)
            if container is None:
                raise TargetError(f"target {self.target.name!r}: container {info.name} is gone")
            path = clock.container_offset_file(container.attrs, f"target {self.target.name!r}")
            if not path.parent.is_dir():
                raise TargetError(f"target {self.target.name!r}: the offset file's host directory {path.parent} "
                                  "does not exist")
            files[str(path)] = path
        return list(files.values())

    def _set(self, seconds: float) -> None:
        for name in self.state["files"]:
            clock.write_offset(Path(name), seconds)

    def inject(self) -> None:
        files = self._files()
        # What each file held before (another fault's offset, or true time) comes back on revert.
        self.state["files"] = {str(f): clock.read_offset(f) for f in files}
        self.state["since"] = time.time()
        self.checkpoint()
        self._set(self.offset_now())

    def offset_now(self) -> float:
        raise NotImplementedError

    def revert(self) -> None:
        for name, original in dict(self.state.get("files") or {}).items():
            path = Path(name)
            if path.parent.is_dir():
                clock.write_offset(path, original)


@register
class ClockSkew(_ClockFault[SkewParams]):
    name = "clock.skew"
    summary = ("Move the target's own clock by an offset (libfaketime; a service starts with clock: controllable, "
               "a container with the preload in its environment).")
    Params = SkewParams

    def offset_now(self) -> float:
        return self.params.offset


@register
class ClockDrift(_ClockFault[DriftParams]):
    name = "clock.drift"
    summary = "Make the target's own clock run fast or slow from the injection on (libfaketime)."
    Params = DriftParams

    @property
    def interval(self) -> float | None:
        return 0.1

    def offset_now(self) -> float:
        return (self.params.rate - 1.0) * (time.time() - float(self.state.get("since", time.time())))

    def tick(self) -> None:
        # libfaketime's own speed factor counts from the process's start, not from the
        # injection, so the drift is an offset that grows, rewritten ten times a second.
        if self.state.get("files"):
            self._set(self.offset_now())
