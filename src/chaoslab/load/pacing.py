"""When operation k is due: k/R after the start, or on a linear ramp from 0 to R first."""

from __future__ import annotations

import math


def due(k: int, rate: float, ramp: float) -> float:
    """Offset of operation ``k`` from the generator's start.

    On a ramp the rate grows as R*t/ramp, so the ops done by t are R*t^2/(2*ramp); inverting
    gives the due time. After the ramp, the ops follow every 1/R.
    """
    if ramp <= 0:
        return k / rate
    on_ramp = rate * ramp / 2
    if k < on_ramp:
        return math.sqrt(2 * ramp * k / rate)
    return ramp + (k - on_ramp) / rate
