"""``timeout``: stop all data (a black hole); close the connection when no data has arrived on
this direction for ``timeout`` ms (the timer restarts with every chunk, as Toxiproxy's), never
if 0. Removing the toxic closes the connections it was holding, as Toxiproxy's ``Cleanup`` does:
the client of a black hole is never left hanging."""

from __future__ import annotations

from .base import Attributes, Emit, Toxic, ToxicContext, millis
from .registry import register


class TimeoutAttributes(Attributes):
    timeout: int = millis(description="Close the connection after this many ms without data; 0 = never close.")


@register
class Timeout(Toxic[TimeoutAttributes]):
    type = "timeout"

    def start(self, ctx: ToxicContext) -> None:
        self._arm(ctx)

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        # Dropped, as Toxiproxy does: a black hole keeps nothing to replay later.
        self._arm(ctx)

    def removed(self, ctx: ToxicContext) -> None:
        ctx.link.close()

    def _arm(self, ctx: ToxicContext) -> None:
        attrs = self.attributes
        previous = ctx.state.pop("timer", None)
        if previous is not None:
            previous.cancel()
        if attrs.timeout > 0:
            ctx.state["timer"] = ctx.call_later(attrs.timeout / 1000.0, ctx.link.close)
