"""``corrupt``: flip one bit in a share of the bytes passing through.

Toxiproxy's ``corrupt`` flips each bit with ``probability``; here ``probability`` is the share
of bytes that get one bit flipped, which is what a test can count. With ``seed`` set, which
bytes (by offset in the stream) and which bits are hit is the same on every run, whatever the
chunking: the generator is drawn per corrupted byte (gap to the next one, then the bit), never
per chunk.
"""

from __future__ import annotations

import math
import random

from pydantic import Field

from .base import Attributes, Emit, Toxic, ToxicContext
from .registry import register


class CorruptAttributes(Attributes):
    probability: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False,
                               description="Share of bytes with one bit flipped, 0 to 1.",
                               json_schema_extra={"unit": "share"})
    seed: int | None = Field(None, ge=0, le=2**63 - 1, strict=True,
                             description="Seed of the choice of bytes and bits; none = a new one per connection.")


def _gap(rng: random.Random, p: float) -> int:
    """Bytes left untouched before the next corrupted one (geometric, mean (1-p)/p)."""
    if p >= 1.0:
        return 0
    return int(math.log(1.0 - rng.random()) / math.log1p(-p))


@register
class Corrupt(Toxic[CorruptAttributes]):
    type = "corrupt"

    def start(self, ctx: ToxicContext) -> None:
        attrs = self.attributes
        if "rng" not in ctx.state:  # an update keeps the position in the stream
            ctx.state["rng"] = random.Random(attrs.seed)
            ctx.state["skip"] = None

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        attrs = self.attributes
        p = attrs.probability
        if p <= 0.0 or not data:
            await emit(data, t)
            return
        rng: random.Random = ctx.state["rng"]
        skip = ctx.state["skip"]
        if skip is None:
            skip = _gap(rng, p)
        out = bytearray(data)
        i = skip
        while i < len(out):
            out[i] ^= 1 << rng.randrange(8)
            i += 1 + _gap(rng, p)
        ctx.state["skip"] = i - len(out)
        await emit(bytes(out), t)
