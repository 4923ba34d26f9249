"""TCP probe: can a connection be opened within the timeout."""

from __future__ import annotations

import asyncio

from pydantic import Field

from . import register
from .base import NoExpect, Probe, ProbeModel, Sample, Stopwatch


class TcpProbeSpec(ProbeModel):
    host: str = "127.0.0.1"
    port: int = Field(..., ge=1, le=65535)


@register
class TcpProbe(Probe[TcpProbeSpec, NoExpect]):
    kind = "tcp"

    async def sample(self) -> Sample:
        watch = Stopwatch()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self.spec.host, self.spec.port), self.timeout)
        except TimeoutError:
            return Sample(False, None, watch.elapsed(), f"connect timeout after {self.timeout:g}s")
        except OSError as exc:
            return Sample(False, None, watch.elapsed(), exc.strerror or str(exc))
        latency = watch.elapsed()
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return Sample(True, None, latency)
