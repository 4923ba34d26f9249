"""``timeout``: stop all data (a black hole); close the connection after ``timeout`` ms, never if 0."""

from __future__ import annotations

from .base import Attributes, Emit, Toxic, ToxicContext, millis
from .registry import register


class TimeoutAttributes(Attributes):
    timeout: int = millis(description="Close the connection after this many ms; 0 = never close.")


@register
class Timeout(Toxic):
    type = "timeout"
    Attributes = TimeoutAttributes

    def start(self, ctx: ToxicContext) -> None:
        attrs = self.attributes
        assert isinstance(attrs, TimeoutAttributes)
        if attrs.timeout > 0:
            ctx.call_later(attrs.timeout / 1000.0, ctx.link.close)

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        # Dropped, as Toxiproxy does: a black hole keeps nothing to replay later.
        return
