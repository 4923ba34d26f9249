"""``slicer``: cut each chunk into slices of about ``average_size`` bytes, ``delay`` µs apart."""

from __future__ import annotations

import random
import time

from pydantic import Field, model_validator

from .base import MAX_MS, Attributes, Emit, Toxic, ToxicContext
from .registry import register


class SlicerAttributes(Attributes):
    average_size: int = Field(1, ge=1, le=2**31, strict=True, description="Average slice size, bytes.",
                              json_schema_extra={"unit": "bytes"})
    size_variation: int = Field(0, ge=0, le=2**31, strict=True, description="± variation of the size, bytes.",
                                json_schema_extra={"unit": "bytes"})
    delay: int = Field(0, ge=0, le=MAX_MS * 1000, strict=True, description="Delay between slices, µs.",
                       json_schema_extra={"unit": "us"})

    @model_validator(mode="after")
    def _variation(self) -> SlicerAttributes:
        if self.size_variation >= self.average_size and self.size_variation:
            raise ValueError("size_variation must be less than average_size")
        return self


def offsets(size: int, average: int, variation: int) -> list[int]:
    """Slice boundaries for ``size`` bytes: halve until within ``average`` ± ``variation``."""
    out = [0]
    stack = [(0, size)]
    while stack:
        start, end = stack.pop()
        if end - start - average <= variation:
            out.append(end)
            continue
        mid = start + (end - start) // 2
        if variation:
            mid += random.randint(-variation, variation)
        mid = min(max(mid, start + 1), end - 1)
        stack.append((mid, end))  # right half after the left one: slices come out in order
        stack.append((start, mid))
    return out


@register
class Slicer(Toxic[SlicerAttributes]):
    type = "slicer"

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        attrs = self.attributes
        cuts = offsets(len(data), attrs.average_size, attrs.size_variation)
        for i in range(1, len(cuts)):
            await emit(data[cuts[i - 1] : cuts[i]], t)
            # Microseconds, as Toxiproxy: the loop's own timers are whole milliseconds, so wait precisely.
            if i + 1 < len(cuts) and not await ctx.sleep_until(time.monotonic() + attrs.delay / 1e6, precise=True):
                await emit(data[cuts[i] :], t)  # removed: the rest goes on in one piece
                return
