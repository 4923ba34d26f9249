"""The blast radius of a selector: ``one`` | ``all`` | ``count:N`` | ``percent:P``."""

from __future__ import annotations

import re


def parse_mode(mode: str) -> tuple[str, float]:
    """``one`` | ``all`` | ``count:N`` | ``percent:P`` -> (kind, number)."""
    if mode in ("one", "all"):
        return mode, 1.0
    m = re.fullmatch(r"(count|percent):(\d+(?:\.\d+)?)", mode)
    if not m:
        raise ValueError(f"invalid mode {mode!r} (expected one, all, count:N or percent:P)")
    n = float(m.group(2))
    if m.group(1) == "count" and (n < 1 or n != int(n)):
        raise ValueError(f"count must be a whole number >= 1, got {mode!r}")
    if m.group(1) == "percent" and not 0 < n <= 100:
        raise ValueError(f"percent must be in (0, 100], got {mode!r}")
    return m.group(1), n
