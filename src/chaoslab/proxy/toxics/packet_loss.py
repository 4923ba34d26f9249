"""``packet_loss``: drop whole chunks, as Toxiproxy 2.13's toxic does.

On a TCP stream there are no packets to lose: the kernel retransmits below us. What Toxiproxy
drops is a chunk, one read of the source socket, so the peer sees a gap in the byte stream (no
close, no RST). ``loss_rate`` is the chance a chunk is dropped; ``correlation`` is added to it
right after a drop (a simple two-state burst model), capped at 1.
"""

from __future__ import annotations

import random

from pydantic import Field

from .base import Attributes, Emit, Toxic, ToxicContext
from .registry import register


class PacketLossAttributes(Attributes):
    loss_rate: float = Field(0.1, ge=0.0, le=1.0, allow_inf_nan=False,
                             description="Share of chunks dropped, 0 to 1.", json_schema_extra={"unit": "share"})
    correlation: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False,
                               description="Added to loss_rate right after a dropped chunk, 0 to 1.",
                               json_schema_extra={"unit": "share"})


@register
class PacketLoss(Toxic[PacketLossAttributes]):
    type = "packet_loss"

    def start(self, ctx: ToxicContext) -> None:
        # One generator per connection and direction: connections do not share a drop history.
        ctx.state.setdefault("rng", random.Random())
        ctx.state.setdefault("dropped", False)

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        attrs = self.attributes
        p = attrs.loss_rate
        if ctx.state["dropped"]:
            p = min(1.0, p + attrs.correlation)
        rng: random.Random = ctx.state["rng"]
        if rng.random() < p:
            ctx.state["dropped"] = True
            return
        ctx.state["dropped"] = False
        await emit(data, t)
