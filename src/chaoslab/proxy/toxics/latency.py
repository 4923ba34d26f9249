"""``latency``: hold each chunk until ``latency`` ± ``jitter`` ms after it arrived."""

from __future__ import annotations

import random

from .base import Attributes, Emit, Toxic, ToxicContext, millis
from .registry import register


class LatencyAttributes(Attributes):
    latency: int = millis(description="Delay added to each chunk, in milliseconds.")
    jitter: int = millis(description="Random ± variation of the delay, in milliseconds.")


@register
class Latency(Toxic[LatencyAttributes]):
    type = "latency"

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        attrs = self.attributes
        delay_ms = float(attrs.latency)
        if attrs.jitter:
            delay_ms += random.uniform(-attrs.jitter, attrs.jitter)
        # Measured from arrival, not from when the previous chunk left: back-to-back chunks
        # are not delayed twice (what Toxiproxy does since 2.1).
        await ctx.sleep_until(t + max(delay_ms, 0.0) / 1000.0, precise=True)
        await emit(data, t)
