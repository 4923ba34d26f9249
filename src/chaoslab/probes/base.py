"""What every probe is: a small class that takes one sample, registered by kind name.

A probe kind is one module: the model of its own key in the experiment file (its spec), the
model of its ``expect:``, and the class that samples, named together in the class statement
(``class HttpProbe(Probe[HttpProbeSpec, HttpExpect])``). The experiment model builds its
``probes:`` entries from the registered kinds, so nothing else lists them.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from ..registry import type_arguments


@dataclass
class Sample:
    ok: bool
    value: Any = None
    latency: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "value": self.value, "latency": self.latency, "error": self.error}


class ProbeModel(BaseModel):
    """Base for a probe kind's spec and expectations: unknown keys are errors.

    Built on first use (``defer_build``): every kind is imported on the first look-up, and a run
    builds only the models of the kinds it uses."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)


class NoExpect(ProbeModel):
    pass


S = TypeVar("S")
"""What the probe's key holds: a pydantic model (``http: {url: ...}``), or an annotated type
(``python: module:function`` is an ``Annotated[str, Field(pattern=...)]``)."""
E = TypeVar("E", bound=BaseModel)
"""The model of the probe's ``expect:`` (``NoExpect`` for kinds that take none)."""


class Probe(ABC, Generic[S, E]):
    kind: ClassVar[str]
    """Registered name, and the probe's key in the experiment file."""
    Spec: ClassVar[Any]
    """The type ``S`` itself, taken from the class statement when the class is defined."""
    Expect: ClassVar[type[BaseModel]] = NoExpect
    """The model ``E`` itself, likewise. (A ClassVar cannot name a type variable.)"""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        args = type_arguments(cls)
        if args:
            cls.Spec, cls.Expect = args

    def __init__(self, name: str, spec: S, expect: E, timeout: float, context: ProbeContext) -> None:
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
