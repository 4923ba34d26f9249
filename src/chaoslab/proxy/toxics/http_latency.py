"""``http_latency``: delay each HTTP message once, by latency ± jitter ms from its first byte.

``latency`` delays every chunk of a stream; this delays the start of each request (upstream)
or response (downstream), measured from the arrival of its first byte, and lets the rest of the
message follow as it comes: a response streamed over a second is late by ``latency``, not by
``latency`` per chunk, and pipelined requests are each delayed from their own arrival.
"""

from __future__ import annotations

import random

from pydantic import Field

from ._http import Event, HttpFramer, HttpToxic, draw, pass_through
from .base import Attributes, Emit, ToxicContext, millis
from .registry import register


class HttpLatencyAttributes(Attributes):
    latency: int = millis(description="Delay added to each message, in milliseconds.")
    jitter: int = millis(description="Random ± variation of the delay, in milliseconds.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, strict=True,
                             description="Seed of the jitter; none = a new one per toxic.")


@register
class HttpLatency(HttpToxic[HttpLatencyAttributes]):
    type = "http_latency"

    async def on_event(self, ctx: ToxicContext, framer: HttpFramer, event: Event, pending: bytearray,
                       emit: Emit, t: float) -> bytes:
        attrs = self.attributes
        kind, value = event
        if kind == "head":
            await self.flush(pending, emit, t)  # the end of the previous message is not held back
            delay_ms = float(attrs.latency)
            if attrs.jitter:
                rng: random.Random = draw(self, attrs.seed)
                delay_ms += rng.uniform(-attrs.jitter, attrs.jitter)
            await ctx.sleep_until(value.t + max(delay_ms, 0.0) / 1000.0, precise=True)
        return pass_through(framer, event)
