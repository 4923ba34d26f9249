"""``http_header``: drop or rewrite one header of every HTTP message on a stream.

Upstream it changes what the server receives in requests, downstream what the client receives
in responses. ``value`` null drops every ``header`` line; a string replaces them with one line
(added when the message had none).
"""

from __future__ import annotations

from pydantic import Field

from ._http import HEADER_NAME, HEADER_VALUE, Event, HttpFramer, HttpToxic, pass_through
from .base import Attributes, Emit, ToxicContext
from .registry import register


class HttpHeaderAttributes(Attributes):
    header: str = Field("", max_length=256, pattern=HEADER_NAME, description="Header name (any case).")
    value: str | None = Field(None, max_length=8192, pattern=HEADER_VALUE,
                              description="New value; null drops the header.")


@register
class HttpHeader(HttpToxic[HttpHeaderAttributes]):
    type = "http_header"

    async def on_event(self, ctx: ToxicContext, framer: HttpFramer, event: Event, pending: bytearray,
                       emit: Emit, t: float) -> bytes:
        attrs = self.attributes
        kind, head = event
        if kind == "head" and attrs.header:
            if attrs.value is None:
                head.drop(attrs.header)
            else:
                head.set(attrs.header, attrs.value)
        return pass_through(framer, event)
