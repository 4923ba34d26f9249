"""Durations, rates and sizes as users write them: ``250ms``, ``10s``, ``2m``, ``200/s``, ``512MB``.

Each has a parser that raises ``ValueError`` with a message fit for a one-line error, and an
``Annotated`` pydantic type so models accept both the string and a plain number (seconds,
operations per second, bytes).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION_UNITS = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|min|m|h)\s*$")
_COMPOUND_RE = re.compile(r"(\d+(?:\.\d+)?)(us|µs|ms|s|min|m|h)")


def parse_duration(value: Any) -> float:
    """Seconds from ``250ms``, ``10s``, ``2m``, ``1m30s``, ``1.5h`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r} (expected e.g. 250ms, 10s, 2m)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        m = _DURATION_RE.match(text)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        parts = _COMPOUND_RE.findall(text)
        if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
            return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if number >= 0:
                return number
    raise ValueError(f"invalid duration {value!r} (expected e.g. 250ms, 10s, 2m)")


_RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 1 / 60.0, "min": 1 / 60.0, "h": 1 / 3600.0}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|min|m|h)\s*$")


def parse_rate(value: Any) -> float:
    """Operations per second from ``200/s``, ``600/m``, or a bare number (per second)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid rate {value!r} (expected e.g. 200/s)")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError(f"rate must be positive, got {value}")
        return float(value)
    if isinstance(value, str):
        m = _RATE_RE.match(value)
        if m:
            rate = float(m.group(1)) * _RATE_UNITS[m.group(2)]
            if rate > 0:
                return rate
            raise ValueError(f"rate must be positive, got {value!r}")
    raise ValueError(f"invalid rate {value!r} (expected e.g. 200/s, 600/m)")


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: Any) -> int:
    """Bytes from ``512MB``, ``1GiB``, ``64k`` or a bare number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r} (expected e.g. 512MB, 1GiB)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"size must not be negative, got {value}")
        return int(value)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(f"invalid size {value!r} (expected e.g. 512MB, 1GiB)")


def format_duration(seconds: float) -> str:
    """Short human form: ``850ms``, ``12.3s``, ``2m05s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:04.1f}s"


def _number_or_pattern(pattern: str, example: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": pattern, "examples": [example]},
            ]
        }
    )


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    _number_or_pattern(r"^\s*\d+(\.\d+)?\s*(us|µs|ms|s|min|m|h)?\s*$", "10s"),
    PlainSerializer(lambda v: v, return_type=float),
]
"""Seconds; accepts ``250ms``, ``10s``, ``2m`` or a number of seconds."""

Rate = Annotated[
    float,
    BeforeValidator(parse_rate),
    _number_or_pattern(r"^\s*\d+(\.\d+)?\s*/\s*(s|sec|min|m|h)\s*$", "200/s"),
]
"""Operations per second; accepts ``200/s`` or a number."""

Size = Annotated[
    int,
    BeforeValidator(parse_size),
    _number_or_pattern(r"^\s*\d+(\.\d+)?\s*[a-zA-Z]*\s*$", "512MB"),
]
"""Bytes; accepts ``512MB``, ``1GiB`` or a number of bytes."""
