from __future__ import annotations

import pytest

from chaoslab.units import format_duration, parse_duration, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("10s", 10.0),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        (3, 3.0),
        ("500us", 0.0005),
        ("7", 7.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["10 parsecs", "-1s", "ms", "", True, -3, "1s2"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_rates_and_sizes() -> None:
    assert parse_rate("200/s") == 200
    assert parse_rate("600/m") == pytest.approx(10)
    assert parse_rate(5) == 5
    with pytest.raises(ValueError):
        parse_rate("0/s")
    with pytest.raises(ValueError):
        parse_rate("fast")
    assert parse_size("512MB") == 512_000_000
    assert parse_size("1GiB") == 1 << 30
    with pytest.raises(ValueError):
        parse_size("12 bananas")
    assert format_duration(0.25) == "250ms"
    assert format_duration(75) == "1m15.0s"
