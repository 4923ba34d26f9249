"""Instant actions at a point of the timeline: run a command, send an HTTP request, call a Python
function. They are what a Chaos Toolkit experiment's actions do (``process``, ``http`` and
``python`` providers), so imported experiments keep their meaning; nothing is reverted (an
experiment that must undo one says so in ``rollbacks:``)."""

from __future__ import annotations

import importlib
import subprocess
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field

from ..errors import FaultError
from ..units import Duration
from . import register
from .base import Fault, FaultParams, P


class _Action(Fault[P]):
    needs = None
    reversible = False


class CommandParams(FaultParams):
    argv: list[str] = Field(min_length=1, description="Program and arguments; never run through a shell.")
    timeout: Duration = Field(30.0, description="Killed after this long.")
    expect_exit: int | None = Field(0, ge=0, le=255, description="Exit code that counts as success; null accepts any.")


@register
class CommandRun(_Action[CommandParams]):
    name = "command.run"
    summary = "Run a command once at this point of the timeline (a Chaos Toolkit process action)."

    def inject(self) -> None:
        p = self.params
        try:
            proc = subprocess.run(p.argv, capture_output=True, text=True, timeout=p.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FaultError(f"command.run {p.argv[0]}: {exc}") from None
        if p.expect_exit is not None and proc.returncode != p.expect_exit:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            raise FaultError(f"command.run {p.argv[0]} exited {proc.returncode} (expected {p.expect_exit}): {tail[0]}")


class HttpParams(FaultParams):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    timeout: Duration = 30.0
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(
        None, description="Statuses that count as success; default any 2xx.")


@register
class HttpRequest(_Action[HttpParams]):
    name = "http.request"
    summary = "Send one HTTP request at this point of the timeline (a Chaos Toolkit http action)."

    def inject(self) -> None:
        p = self.params
        kw: dict[str, Any] = {"json": p.body} if p.body is not None and not isinstance(p.body, str) else {"content": p.body}
        try:
            r = httpx.request(p.method, p.url, headers=p.headers, timeout=p.timeout, **kw)
        except httpx.HTTPError as exc:
            raise FaultError(f"http.request {p.method} {p.url}: {exc}") from None
        ok = r.status_code in p.expect_status if p.expect_status else 200 <= r.status_code < 300
        if not ok:
            raise FaultError(f"http.request {p.method} {p.url} answered {r.status_code}")


class PythonParams(FaultParams):
    function: str = Field(pattern=r"^[\w.]+:[\w]+$", description="module:function")
    arguments: dict[str, Any] = Field(default_factory=dict)


@register
class PythonCall(_Action[PythonParams]):
    name = "python.call"
    summary = "Call a Python function once at this point of the timeline (a Chaos Toolkit python action)."

    def inject(self) -> None:
        module, _, func = self.params.function.partition(":")
        try:
            fn = getattr(importlib.import_module(module), func)
            fn(**self.params.arguments)
        except Exception as exc:  # the user's code: any failure is the action failing
            raise FaultError(f"python.call {self.params.function}: {type(exc).__name__}: {exc}") from None
