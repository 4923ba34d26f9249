"""What every probe is: a small class that takes one sample, registered by kind name."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


@dataclass
class Sample:
    ok: bool
    value: Any = None
    latency: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "value": self.value, "latency": self.latency, "error": self.error}


class NoExpect(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Probe(ABC):
    kind: ClassVar[str]
    Expect: ClassVar[type[BaseModel]] = NoExpect

    def __init__(self, name: str, spec: Any, expect: BaseModel, timeout: float, context: ProbeContext) -> None:
        self.name = name
        self.spec = spec
        self.expect = expect
        self.timeout = timeout
        self.context = context

    async def start(self) -> None:
        """Open long-lived resources (an HTTP client)."""

    async def close(self) -> None:
        """Release what ``start`` opened."""

    @abstractmethod
    async def sample(self) -> Sample: ...


@dataclass
class ProbeContext:
    """What probes may need from the run: resolved targets by name."""

    targets: dict[str, Any]


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
