"""``slow_close``: when one side closes, wait ``delay`` ms before passing the close on."""

from __future__ import annotations

from .base import Attributes, Toxic, ToxicContext, millis
from .registry import register


class SlowCloseAttributes(Attributes):
    delay: int = millis(description="Delay before the close is passed on, in milliseconds.")


@register
class SlowClose(Toxic[SlowCloseAttributes]):
    type = "slow_close"

    async def before_close(self, ctx: ToxicContext) -> None:
        attrs = self.attributes
        await ctx.sleep(attrs.delay / 1000.0)
