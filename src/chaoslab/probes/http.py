"""HTTP probe: status, latency and JSON-path expectations."""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import Field, field_validator

from .. import jsonpath
from ..units import Duration
from . import register
from .base import Probe, ProbeModel, Sample, Stopwatch


class HttpProbeSpec(ProbeModel):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None


class HttpExpect(ProbeModel):
    status: list[int] | int | None = Field(None, description="Accepted status codes (default: 2xx).")
    max_latency: Duration | None = None
    json_: dict[str, Any] | None = Field(None, alias="json", description="JSON path -> expected value.")
    body_contains: str | None = None

    @field_validator("json_")
    @classmethod
    def _paths(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        for path in v or {}:
            jsonpath.parse(path)
        return v


@register
class HttpProbe(Probe[HttpProbeSpec, HttpExpect]):
    kind = "http"
    _client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        # A plain-HTTP URL that is never redirected never meets TLS, so its client skips loading
        # the CA bundle (~50 ms of start-up per client, bench/watch_cost.py); https verifies.
        plain = self.spec.url.lower().startswith("http://")
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, verify=not plain)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def sample(self) -> Sample:
        assert self._client is not None
        spec = self.spec
        watch = Stopwatch()
        try:
            resp = await self._client.request(
                spec.method, spec.url, headers=spec.headers, json=spec.body if spec.body is not None else None
            )
        except httpx.TimeoutException:
            return Sample(False, None, watch.elapsed(), f"timeout after {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return Sample(False, None, watch.elapsed(), f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        latency = watch.elapsed()
        return self.judge(resp.status_code, resp.text, latency)

    def judge(self, status: int, text: str, latency: float) -> Sample:
        exp = self.expect
        allowed = [exp.status] if isinstance(exp.status, int) else exp.status
        if allowed is None and not 200 <= status < 300:
            return Sample(False, status, latency, f"status {status}")
        if allowed is not None and status not in allowed:
            return Sample(False, status, latency, f"status {status} not in {allowed}")
        if exp.max_latency is not None and latency > exp.max_latency:
            return Sample(False, status, latency, f"latency {latency * 1000:.0f}ms over {exp.max_latency * 1000:.0f}ms")
        if exp.body_contains is not None and exp.body_contains not in text:
            return Sample(False, status, latency, f"body lacks {exp.body_contains!r}")
        if exp.json_:
            import json

            try:
                data = json.loads(text)
            except ValueError:
                return Sample(False, status, latency, "body is not JSON")
            for path, want in exp.json_.items():
                got = jsonpath.get(data, path, None)
                if got != want:
                    return Sample(False, status, latency, f"{path} is {got!r}, expected {want!r}")
        return Sample(True, status, latency)
