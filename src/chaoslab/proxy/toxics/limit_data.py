"""``limit_data``: pass ``bytes`` bytes on this direction, then close the connection."""

from __future__ import annotations

from pydantic import Field

from .base import Attributes, Emit, Toxic, ToxicContext
from .registry import register


class LimitDataAttributes(Attributes):
    bytes: int = Field(0, ge=0, le=2**62, strict=True, description="Bytes passed before closing.",
                       json_schema_extra={"unit": "bytes"})


@register
class LimitData(Toxic[LimitDataAttributes]):
    type = "limit_data"

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        attrs = self.attributes
        sent = int(ctx.state.get("sent", 0))
        remaining = max(attrs.bytes - sent, 0)
        if remaining < len(data):
            data = data[:remaining]
        if data:
            ctx.state["sent"] = sent + len(data)
            await emit(data, t)
        if ctx.state.get("sent", 0) >= attrs.bytes:
            ctx.link.close()

    # Counting needs no bytes: a bulk flow under the limit stays on the spliced path.
    def passes_unseen(self, ctx: ToxicContext) -> int:
        return max(self.attributes.bytes - int(ctx.state.get("sent", 0)), 0)

    def passed_unseen(self, ctx: ToxicContext, n: int) -> None:
        ctx.state["sent"] = int(ctx.state.get("sent", 0)) + n
        if ctx.state["sent"] >= self.attributes.bytes:
            ctx.link.close()
