"""Python probe: ``module:function``. Truthy return (or None) is success; falsy or raising is failure."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from . import register
from .base import NoExpect, Probe, Sample, Stopwatch

PythonRef = Annotated[str, Field(pattern=r"^[\w.]+:[\w]+$", description="module:function returning truthy/raising")]
"""The spec of a python probe is a bare string: ``python: mymodule:check``."""


def load_callable(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    if not callable(fn):
        raise TypeError(f"{ref} is not callable")
    return fn  # type: ignore[no-any-return]


class ProbeExit(Exception):
    """A user's probe called sys.exit() or raised KeyboardInterrupt: a failed sample, not our exit."""


def _contained(fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        try:
            return fn()
        except (SystemExit, KeyboardInterrupt) as exc:
            raise ProbeExit(f"{type(exc).__name__}: {exc}") from None

    return call


@register
class PythonProbe(Probe[PythonRef, NoExpect]):
    kind = "python"
    _fn: Callable[..., Any] | None = None

    async def start(self) -> None:
        self._fn = load_callable(self.spec)

    async def sample(self) -> Sample:
        assert self._fn is not None
        watch = Stopwatch()
        try:
            if inspect.iscoroutinefunction(self._fn):
                try:
                    value = await asyncio.wait_for(self._fn(), self.timeout)
                except (SystemExit, KeyboardInterrupt) as exc:
                    raise ProbeExit(f"{type(exc).__name__}: {exc}") from None
            else:
                value = await asyncio.wait_for(asyncio.to_thread(_contained(self._fn)), self.timeout)
        except TimeoutError:
            return Sample(False, None, watch.elapsed(), f"timeout after {self.timeout:g}s")
        except Exception as exc:
            return Sample(False, None, watch.elapsed(), f"{type(exc).__name__}: {exc}")
        ok = value is None or bool(value)
        return Sample(ok, value if isinstance(value, int | float | str | bool) else None, watch.elapsed(),
                      None if ok else f"returned {value!r}")
