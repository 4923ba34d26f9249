"""Durations, rates and sizes as users write them: ``250ms``, ``10s``, ``2m``, ``200/s``, ``512MB``
(and the check of a regular expression they write).

Each has a parser that raises ``ValueError`` with a message fit for a one-line error, and an
``Annotated`` pydantic type so models accept both the string and a plain number (seconds,
operations per second, bytes).
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

MAX_DURATION = 7 * 24 * 3600.0
"""Every duration in the format is at most 7 days (604800 s); a longer one is a typo."""
MAX_RATE = 1_000_000.0
"""Operations per second; one generator process cannot offer more than a few tens of thousands."""
MAX_SIZE = 2**50
"""Bytes (1 PiB)."""
MAX_COUNT = 2**53
"""Any other count (an rlimit, a number of operations): the loader's limit on every number."""
PID_MAX_LIMIT = 2**22
"""Linux's largest pid and largest pids.max on 64-bit (PID_MAX_LIMIT)."""
MAX_SIGNAL = 64
"""Highest Linux signal number (SIGRTMAX)."""
MAX_IOPS = 10**9
"""I/O operations per second; far beyond any device, below what io.max accepts."""


def shown(value: Any) -> str:
    """A value as the user wrote it, for a one-line message: never a Python repr such as
    ``datetime.date(2026, 1, 1)``, ``b''`` or ``None``."""
    if value is None:
        return "null (no value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return "'" + text.replace("'", "''") + "'" if text else "'' (empty)"
    if isinstance(value, bytes | bytearray):
        return f"binary data ({len(value)} bytes)"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, int):
        digits = str(value)
        return digits if len(digits) <= 24 else f"{digits[:12]}... ({len(digits)} digits)"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _finite_number(value: int | float, what: str, maximum: float) -> float:
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{what} {shown(value)} is out of range (at most {maximum:g})") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {shown(value)}")
    if number > maximum:
        raise ValueError(f"{what} {shown(value)} is out of range (at most {maximum:g})")
    return number


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
    """Seconds from ``250ms``, ``10s``, ``2m``, ``1m30s``, ``1.5h`` or a bare number of seconds;
    finite, not negative, at most ``MAX_DURATION``."""
    seconds = _parse_duration(value)
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(f"duration {shown(value)} is out of range (at most 7 days, {MAX_DURATION:g}s)")
    return seconds


def _parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {shown(value)} (expected e.g. 250ms, 10s, 2m)")
    if isinstance(value, int | float):
        number = _finite_number(value, "duration", MAX_DURATION)
        if number < 0:
            raise ValueError(f"duration must not be negative, got {shown(value)}")
        return number
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
    raise ValueError(f"invalid duration {shown(value)} (expected e.g. 250ms, 10s, 2m)")


_RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 1 / 60.0, "min": 1 / 60.0, "h": 1 / 3600.0}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|min|m|h)\s*$")


def parse_rate(value: Any) -> float:
    """Operations per second from ``200/s``, ``600/m``, or a bare number (per second)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid rate {shown(value)} (expected e.g. 200/s)")
    if isinstance(value, int | float):
        rate = _finite_number(value, "rate", MAX_RATE)
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {shown(value)}")
        return rate
    if isinstance(value, str):
        m = _RATE_RE.match(value)
        if m:
            rate = float(m.group(1)) * _RATE_UNITS[m.group(2)]
            if not math.isfinite(rate) or rate > MAX_RATE:
                raise ValueError(f"rate {shown(value)} is out of range (at most {MAX_RATE:g}/s)")
            if rate > 0:
                return rate
            raise ValueError(f"rate must be positive, got {shown(value)}")
    raise ValueError(f"invalid rate {shown(value)} (expected e.g. 200/s, 600/m)")


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
        raise ValueError(f"invalid size {shown(value)} (expected e.g. 512MB, 1GiB)")
    if isinstance(value, int | float):
        size = _finite_number(value, "size", MAX_SIZE)
        if size < 0:
            raise ValueError(f"size must not be negative, got {shown(value)}")
        return int(size)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            size = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
            if not math.isfinite(size) or size > MAX_SIZE:
                raise ValueError(f"size {shown(value)} is out of range (at most 1PiB)")
            return int(size)
    raise ValueError(f"invalid size {shown(value)} (expected e.g. 512MB, 1GiB)")


def format_duration(seconds: float) -> str:
    """Short human form: ``850ms``, ``12.3s``, ``2m05s``."""
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:04.1f}s"


def _number_or_pattern(pattern: str, example: str, maximum: float) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": maximum},
                {"type": "string", "pattern": pattern, "examples": [example]},
            ]
        }
    )


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    _number_or_pattern(r"^\s*\d+(\.\d+)?\s*(us|µs|ms|s|min|m|h)?\s*$", "10s", MAX_DURATION),
    PlainSerializer(lambda v: v, return_type=float),
]
"""Seconds; accepts ``250ms``, ``10s``, ``2m`` or a number of seconds."""

Rate = Annotated[
    float,
    BeforeValidator(parse_rate),
    _number_or_pattern(r"^\s*\d+(\.\d+)?\s*/\s*(s|sec|min|m|h)\s*$", "200/s", MAX_RATE),
]
"""Operations per second; accepts ``200/s`` or a number."""

Size = Annotated[
    int,
    BeforeValidator(parse_size),
    _number_or_pattern(r"^\s*\d+(\.\d+)?\s*[a-zA-Z]*\s*$", "512MB", MAX_SIZE),
]
"""Bytes; accepts ``512MB``, ``1GiB`` or a number of bytes."""


def regex(v: str | None) -> str | None:
    """A regular expression as written, or ``ValueError`` with a one-line reason."""
    if v is not None:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
    return v
