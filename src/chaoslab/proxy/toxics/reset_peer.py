"""``reset_peer``: on the first data, wait ``timeout`` ms then close the connection with a TCP RST."""

from __future__ import annotations

from .base import Attributes, Emit, Toxic, ToxicContext, millis
from .registry import register


class ResetPeerAttributes(Attributes):
    timeout: int = millis(description="Delay before the reset, in ms, counted from the first data.")


@register
class ResetPeer(Toxic[ResetPeerAttributes]):
    type = "reset_peer"

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        attrs = self.attributes
        if ctx.state.get("armed"):
            return
        ctx.state["armed"] = True
        # Toxiproxy drops the data and resets after the timeout, so do we.
        if await ctx.sleep(attrs.timeout / 1000.0):
            ctx.link.reset()
