"""The ``python: module:function`` driver, for systems that do not speak HTTP (SQL, Redis...).

The function gets one dict ``{seq, key, run, args}`` and may be sync (run in a thread) or async.
It returns ``None``/``True`` (done, acknowledged under ``key``), a ``str``/``int`` (done,
acknowledged under that id) or ``False`` (refused). Raising :class:`Refused` means the system
declined the write; any other exception is an error whose effect is unknown.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ..errors import InputError
from ..experiment.workload import PythonLoad
from .driver import Cancel, Done, Result, submit_coroutine


class Refused(Exception):
    """Raise from a workload function when the system explicitly declined the operation."""


def import_callable(ref: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"cannot import {ref}: {exc}") from None
    if not callable(fn):
        raise InputError(f"{ref} is not callable")
    return fn  # type: ignore[no-any-return]


class PythonDriver:
    def __init__(self, spec: PythonLoad, run: str) -> None:
        self.spec = spec
        self.run = run
        self._fn = import_callable(spec.python)
        self._async = inspect.iscoroutinefunction(self._fn)

    async def start(self) -> None:
        return None

    def submit(self, seq: int, key: str, done: Done) -> Cancel:
        return submit_coroutine(self.call(seq, key), done)

    async def call(self, seq: int, key: str) -> Result:
        ctx = {"seq": seq, "key": key, "run": self.run, "args": self.spec.args}
        try:
            out = await self._fn(ctx) if self._async else await asyncio.to_thread(self._fn, ctx)
        except Refused as exc:
            return Result(False, refused=True, error=f"refused: {exc}")
        except Exception as exc:
            return Result(False, error=f"{type(exc).__name__}: {exc}")
        if out is False:
            return Result(False, refused=True, error="refused")
        ack_id = str(out) if isinstance(out, str | int) and not isinstance(out, bool) else None
        return Result(True, ack=True, ack_id=ack_id)

    async def close(self) -> None:
        return None
