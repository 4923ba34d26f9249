"""``http_abort``: cut a share of HTTP messages off mid-body, then close or reset the connection.

The head and the first ``after`` bytes of the body are handed on, then the connection ends (FIN,
or RST with ``reset``): downstream the client sees a response shorter than its Content-Length
(or an unterminated chunked body), upstream the server sees a truncated request. A message whose
body is no longer than ``after`` is cut before its end (the last chunk of a chunked body is not
sent). ``share`` is drawn per message as in ``http_status``.
"""

from __future__ import annotations

from pydantic import Field

from ._http import Event, HttpFramer, HttpToxic, draw, encode_body, pass_through
from .base import Attributes, Emit, ToxicContext
from .registry import register


class HttpAbortAttributes(Attributes):
    after: int = Field(0, ge=0, le=2**62, strict=True, description="Body bytes passed before the abort.",
                       json_schema_extra={"unit": "bytes"})
    share: float = Field(1.0, ge=0.0, le=1.0, allow_inf_nan=False, description="Share of messages cut, 0 to 1.",
                         json_schema_extra={"unit": "share"})
    reset: bool = Field(False, strict=True, description="End with a TCP RST instead of a close.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, strict=True,
                             description="Seed of the choice of messages; none = a new one per toxic.")


@register
class HttpAbort(HttpToxic[HttpAbortAttributes]):
    type = "http_abort"

    async def on_event(self, ctx: ToxicContext, framer: HttpFramer, event: Event, pending: bytearray,
                       emit: Emit, t: float) -> bytes:
        attrs = self.attributes
        kind, value = event
        if ctx.state.get("aborted"):
            return b""
        left = ctx.state.get("left")
        if kind == "head":
            if draw(self, attrs.seed).random() < attrs.share:
                ctx.state["left"] = attrs.after
            return pass_through(framer, event)
        if left is None:
            return pass_through(framer, event)
        if kind == "body" and len(value) < left:
            ctx.state["left"] = left - len(value)
            return pass_through(framer, event)
        if kind == "body" and framer.head is not None:
            pending += encode_body(framer.head, value[:left])
        await self.flush(pending, emit, t)
        ctx.state["aborted"] = True
        if attrs.reset:
            ctx.link.reset()
        else:
            ctx.link.close()
        return b""
