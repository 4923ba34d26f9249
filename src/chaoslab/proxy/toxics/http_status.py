"""``http_status``: answer a share of HTTP responses with a status code of your choosing.

On the downstream stream of an HTTP/1.1 link: the chosen responses are replaced whole (head and
body) by ``code`` with ``body`` and ``headers``; the request still reached the server, as when a
gateway in front of it fails. Interim (1xx) responses are never replaced. ``share`` is drawn per
response from one generator per toxic: with ``seed`` set, the k-th response through the toxic
gets the same decision on every run.
"""

from __future__ import annotations

from pydantic import Field

from ._http import REASONS, Event, Head, HeaderMap, HttpFramer, HttpToxic, draw, pass_through
from .base import Attributes, Emit, ToxicContext
from .registry import register


class HttpStatusAttributes(Attributes):
    code: int = Field(503, ge=100, le=599, strict=True, description="Status code of the injected responses.")
    share: float = Field(1.0, ge=0.0, le=1.0, allow_inf_nan=False, description="Share of responses replaced, 0 to 1.",
                         json_schema_extra={"unit": "share"})
    body: str = Field("", max_length=1 << 20, description="Body of the injected responses (UTF-8).")
    headers: HeaderMap = Field(default_factory=dict, description="Headers of the injected responses.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, strict=True,
                             description="Seed of the choice of responses; none = a new one per toxic.")


@register
class HttpStatus(HttpToxic[HttpStatusAttributes]):
    type = "http_status"
    streams = ("downstream",)

    async def on_event(self, ctx: ToxicContext, framer: HttpFramer, event: Event, pending: bytearray,
                       emit: Emit, t: float) -> bytes:
        attrs = self.attributes
        kind, value = event
        if kind == "head" and value.status >= 200 and draw(self, attrs.seed).random() < attrs.share:
            ctx.state["swallowing"] = True
            return self.response(value, attrs)
        if ctx.state.get("swallowing") and kind in ("body", "end"):
            if kind == "end":
                ctx.state["swallowing"] = False
            return b""
        return pass_through(framer, event)

    @staticmethod
    def response(original: Head, attrs: HttpStatusAttributes) -> bytes:
        body = attrs.body.encode()
        head = Head(request=False, version=original.version, status=attrs.code,
                    reason=REASONS.get(attrs.code, "Injected").encode(),
                    headers=[(b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", b"%d" % len(body))])
        if (original.get("connection") or b"").lower() == b"close":
            head.set("Connection", "close")
        for name, value in attrs.headers.items():
            head.set(name, value)
        return head.encode() + body
