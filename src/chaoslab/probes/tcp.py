"""TCP probe: can a connection be opened within the timeout, and, with ``send``, does the
service answer it.

A connect alone is answered by the kernel: a frozen (paused, SIGSTOPped) server still completes
the handshake from its listen queue, so only a request the server itself must answer shows it
is running (Nagios' check_tcp send/expect). ``send`` is written as Latin-1 text (YAML's ``\\x..``
escapes give any byte) and the reply's first bytes must match the regular expression ``reply``;
``reply`` alone reads the greeting of a server that speaks first.
"""

from __future__ import annotations

import asyncio
import re

from pydantic import Field, field_validator

from ..units import regex
from . import register
from .base import NoExpect, Probe, ProbeModel, Sample, Stopwatch


class TcpProbeSpec(ProbeModel):
    host: str = "127.0.0.1"
    port: int = Field(..., ge=1, le=65535)
    send: str | None = Field(None, description="Bytes to send once connected (Latin-1 text; YAML \\x escapes), "
                                               "e.g. \"PING\\r\\n\" for Redis.")
    reply: str | None = Field(None, description="Regular expression the first bytes of the answer must match "
                                                "(from the start); any answer when omitted. Without send, "
                                                "the greeting of a server that speaks first (SSH, SMTP, MySQL).")

    @field_validator("reply")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        return regex(v)

    @field_validator("send")
    @classmethod
    def _latin1(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                v.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError("send holds characters beyond one byte; give bytes as \\x.. escapes") from None
        return v


@register
class TcpProbe(Probe[TcpProbeSpec, NoExpect]):
    kind = "tcp"

    async def sample(self) -> Sample:
        watch = Stopwatch()
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.spec.host, self.spec.port)
                try:
                    return await self._exchange(reader, writer, watch)
                finally:
                    writer.close()
                    try:
                        await writer.wait_closed()
                    except OSError:
                        pass
        except TimeoutError:
            what = "connect" if self.spec.send is None and self.spec.reply is None else "an answer"
            return Sample(False, None, watch.elapsed(), f"{what} timeout after {self.timeout:g}s")
        except OSError as exc:
            return Sample(False, None, watch.elapsed(), exc.strerror or str(exc))

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watch: Stopwatch) -> Sample:
        if self.spec.send is None and self.spec.reply is None:
            return Sample(True, None, watch.elapsed())
        if self.spec.send is not None:
            writer.write(self.spec.send.encode("latin-1"))
            await writer.drain()
        data = await reader.read(512)
        latency = watch.elapsed()
        if not data:
            return Sample(False, None, latency, "closed without an answer")
        text = data.decode("latin-1")
        if self.spec.reply is not None and re.match(self.spec.reply, text) is None:
            return Sample(False, None, latency, f"answer {text[:40]!r} does not match {self.spec.reply!r}")
        return Sample(True, None, latency)
