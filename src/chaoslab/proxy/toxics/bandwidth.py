"""``bandwidth``: pass data on at no more than ``rate`` KB/s (1 KB = 1000 bytes, as Toxiproxy)."""

from __future__ import annotations

import time

from pydantic import Field

from .base import Attributes, Emit, Toxic, ToxicContext
from .registry import register


class BandwidthAttributes(Attributes):
    rate: int = Field(0, ge=0, le=10**12, strict=True, description="Rate in KB/s; 0 means unlimited.")


@register
class Bandwidth(Toxic[BandwidthAttributes]):
    type = "bandwidth"

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        attrs = self.attributes
        if attrs.rate <= 0:
            await emit(data, t)
            return
        per_second = attrs.rate * 1000
        # Pieces of at most 100 ms worth of data so a slow rate still trickles smoothly.
        piece = max(1, per_second // 10)
        view = memoryview(data)
        while view:
            part, view = view[:piece], view[piece:]
            # Idle time earns no credit: the schedule restarts from now after a pause.
            due = max(ctx.state.get("next", 0.0), time.monotonic()) + len(part) / per_second
            ctx.state["next"] = due
            if not await ctx.sleep_until(due):
                await emit(bytes(part) + bytes(view), t)  # removed: hand everything on
                return
            await emit(bytes(part), t)
