"""What Chaos Mesh's admission webhook refuses, for the fields chaoslab writes, and the exact
spellings Chaos Mesh's parsers read.

The ``chaosmesh.*`` fault parameters call these from their pydantic validators, so
``chaoslab validate`` and ``chaoslab run`` (which loads the file the same way) refuse a step
before anything exists in the cluster, with Chaos Mesh's reason, instead of the API server
refusing the resource mid-run. Written from Chaos Mesh's ``api/v1alpha1`` (``*_webhook.go``,
``*_types.go``, ``common_webhook.go``), its CRDs and its daemon's use of the values (v2.8.3 and
main); the code is ours. Each function raises ``ValueError`` with a one-line message.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

UINT32_MAX = 2**32 - 1
"""``limit`` and ``buffer`` are Go ``uint32`` fields: a larger number fails to decode."""
UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1
"""A Go ``time.Duration`` counts nanoseconds in an int64."""
NETEM_STEP = Decimal("0.000001")
"""Chaos Mesh's daemon hands percentages to tc with six decimals (``loss %f``)."""

_NS_UNITS = (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1))


def nanoseconds(seconds: float) -> int:
    """Whole nanoseconds of a duration, from the float's shortest decimal form (0.0003 -> 300000)."""
    return round(Decimal(repr(seconds)) * 10**9)


def go_duration(seconds: float) -> str:
    """A duration exactly, in the one-unit form the CRDs' pattern
    ``^[0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h)$`` and Go's ``time.ParseDuration`` both accept: the
    largest unit that divides it (``300us``, ``1500ms``, ``2m``); zero is ``0ms`` as Chaos Mesh
    defaults it."""
    ns = nanoseconds(seconds)
    if ns == 0:
        return "0ms"
    for unit, size in _NS_UNITS:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise AssertionError("unreachable: every whole number of ns divides by 1")


def check_duration(seconds: float, what: str, *, allow_zero: bool) -> float:
    """A delay Chaos Mesh can write: whole nanoseconds, and more than none unless ``allow_zero``."""
    ns = nanoseconds(seconds)
    if ns == 0 and not allow_zero:
        raise ValueError(f"{what} must be at least 1ns (a {what} of {seconds:g}s injects nothing)")
    if ns == 0 and seconds > 0:
        raise ValueError(f"{what} {seconds:g}s is below 1ns: Chaos Mesh counts durations in whole nanoseconds")
    return seconds


def plain_decimal(value: float) -> str:
    """A number as the plain decimal Chaos Mesh's FloatStr fields hold (``0.00001``, ``20``,
    ``12.5``): never Python's exponent form (``1e-05``), which the CRDs' patterns refuse."""
    return format(Decimal(repr(value)).normalize(), "f")


def check_netem_percent(value: float, what: str) -> float:
    """A non-zero percentage that survives the daemon's six decimals (smaller becomes 0%)."""
    # below one step the daemon's "%f" writes 0.000000 (or rounds a float32 of 5e-7 either way)
    if value > 0 and Decimal(repr(value)) < NETEM_STEP:
        raise ValueError(
            f"{what} {plain_decimal(value)}% is below 0.000001%: Chaos Mesh's daemon passes it to tc "
            "with six decimals, so it would drop nothing"
        )
    return value


# Rate.Validate: the suffixes in the order Chaos Mesh tries them (kbit before bit, kbps before bps);
# the daemon converts bps units by 1024 and bit units by 1000/8 into a uint64 of bytes per second.
_RATE_SUFFIXES = ("kbit", "mbit", "gbit", "tbit", "tbps", "gbps", "mbps", "kbps", "bps", "bit")
_BYTES_PER_UNIT = {
    "bps": Fraction(1), "kbps": Fraction(1024), "mbps": Fraction(1024**2), "gbps": Fraction(1024**3),
    "tbps": Fraction(1024**4), "bit": Fraction(1, 8), "kbit": Fraction(1000, 8), "mbit": Fraction(1000**2, 8),
    "gbit": Fraction(1000**3, 8), "tbit": Fraction(1000**4, 8),
}


def check_rate(text: str) -> str:
    """A bandwidth rate as Chaos Mesh reads it (a whole number, then bit, kbit, mbit, gbit, tbit,
    bps, kbps, mbps, gbps or tbps; case and spaces ignored), returned in the plain form written."""
    s = text.strip().lower()
    unit = next((u for u in _RATE_SUFFIXES if s.endswith(u)), None)
    if unit is None:
        raise ValueError(
            f"rate {text!r}: invalid unit, Chaos Mesh's webhook refuses it (parse rate field error: invalid unit; "
            "units: bit, kbit, mbit, gbit, tbit, bps, kbps, mbps, gbps, tbps)"
        )
    number = s[: -len(unit)].strip()
    if not re.fullmatch(r"[0-9]+", number):
        raise ValueError(
            f"rate {text!r}: Chaos Mesh takes a whole number before the unit (its webhook parses it with "
            "strconv.ParseUint): write a smaller unit (1mbps = 1024kbps, 1mbit = 1000kbit)"
        )
    n = int(number)
    if n > UINT64_MAX:
        raise ValueError(f"rate {text!r} is out of range: Chaos Mesh's webhook reads the number as a uint64")
    per_second = n * _BYTES_PER_UNIT[unit]
    if per_second > UINT64_MAX:
        raise ValueError(
            f"rate {text!r} is too large: Chaos Mesh's daemon converts it to bytes per second in a "
            "64-bit number, which would wrap around"
        )
    if per_second < 1:
        raise ValueError(f"rate {text!r}: the rate must be at least 1 byte per second (Chaos Mesh's daemon "
                         "rounds it down to whole bytes; 0 would stop all traffic: use network_partition)")
    return f"{n}{unit}"


_BYTES_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")


def check_stress_size(text: str) -> str:
    """A memory stressor's size as Chaos Mesh's ``Bytes`` type accepts it: a whole percentage
    0-100 of the available memory (``strconv.Atoi``), or a size in B, KB..TB, KiB..TiB."""
    if text.endswith("%"):
        number = text[:-1]
        if not re.fullmatch(r"[0-9]+", number):
            raise ValueError(
                f"size {text!r}: a percentage must be a whole number, Chaos Mesh's webhook refuses it "
                f"(incorrect bytes format: strconv.Atoi: parsing {number!r}: invalid syntax)"
            )
        percent = int(number)
        if percent > 100:
            raise ValueError(f"size {text!r}: at most 100%, Chaos Mesh's webhook refuses it "
                             "(incorrect bytes format: illegal proportion)")
        if percent == 0:
            raise ValueError(f"size {text!r} stresses nothing (give 1% to 100%, or a size such as 256MB)")
        return text
    m = _BYTES_RE.fullmatch(text)
    if not m:
        raise ValueError(f"invalid size {text!r} (expected a whole percentage such as 50%, or a size such as "
                         "256MB, 1.5GiB; units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
    if float(m.group(1)) == 0:
        raise ValueError(f"size {text!r} stresses nothing")
    return text


# Go's time.ParseDuration: an optional sign, then "0" alone or numbers each with a unit
# (digits with an optional fraction, or a fraction alone: "1.5h", ".5s", "1.h").
_GO_UNITS_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                "h": 3600 * 10**9}
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([^0-9.]*)")


def go_duration_ns(text: str, what: str) -> Fraction:
    """The signed nanoseconds of a Go duration string, refused where Go's ``time.ParseDuration``
    (which Chaos Mesh's webhook calls) refuses it."""
    s = text
    sign = -1 if s.startswith("-") else 1
    s = s[1:] if s[:1] in "+-" else s
    if s == "0":
        return Fraction(0)
    if not s:
        raise ValueError(f"{what} {text!r}: not a Go duration, Chaos Mesh's webhook refuses it "
                         "(e.g. -10m, 2h30m, 300ms)")
    total = Fraction(0)
    pos = 0
    while pos < len(s):
        m = _GO_PART.match(s, pos)
        if not m:
            raise ValueError(f"{what} {text!r}: not a Go duration, Chaos Mesh's webhook refuses it "
                             "(e.g. -10m, 2h30m, 300ms)")
        number, unit = m.group(1), m.group(2)
        if not unit:
            raise ValueError(f"{what} {text!r}: missing unit in duration, Chaos Mesh's webhook refuses it "
                             "(units ns, us, ms, s, m, h)")
        if unit not in _GO_UNITS_NS:
            raise ValueError(f"{what} {text!r}: unknown unit {unit!r} in duration, Chaos Mesh's webhook refuses it "
                             "(units ns, us, ms, s, m, h)")
        total += Fraction(Decimal(number if not number.endswith(".") else number + "0")) * _GO_UNITS_NS[unit]
        pos = m.end()
    if total > INT64_MAX:
        raise ValueError(f"{what} {text!r} is out of range: Chaos Mesh's webhook refuses it (time: invalid "
                         "duration; a Go duration is at most about 2562047h, 292 years)")
    return sign * total


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def check_container_name(name: str) -> str:
    """A Kubernetes container name (a DNS-1123 label): any other name selects no container."""
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        raise ValueError(f"{name!r} is not a container name (Kubernetes names containers with lowercase "
                         "letters, digits and '-', at most 63, starting and ending alphanumeric)")
    return name
