"""TCP probe: can a connection be opened within the timeout."""

from __future__ import annotations

import asyncio

from .base import Probe, Sample, Stopwatch


class TcpProbe(Probe):
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
