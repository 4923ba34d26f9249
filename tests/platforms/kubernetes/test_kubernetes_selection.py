"""Pure parts of the Kubernetes platform: the seeded blast radius and label parsing (no cluster)."""

from __future__ import annotations

import pytest

from chaoslab.faults.kubernetes import parse_labels
from chaoslab.platforms.kubernetes import choose

PODS = [f"web-{i}" for i in range(10)]


def test_same_seed_same_pods_other_seed_other_pods() -> None:
    picks = {tuple(choose(PODS, "count:3", seed)) for seed in range(20)}
    assert len(picks) > 1, "the choice depends on the seed"
    assert all(
        choose(PODS, "count:3", s) == choose(list(reversed(PODS)), "count:3", s) for s in range(20)
    )


@pytest.mark.parametrize(
    ("mode", "n"),
    [
        ("one", 1),
        ("all", 10),
        ("count:4", 4),
        ("percent:25", 3),
        ("percent:100", 10),
        ("percent:1", 1),
    ],
)
def test_mode_sizes(mode: str, n: int) -> None:
    got = choose(PODS, mode, 5)
    assert len(got) == n and len(set(got)) == n and set(got) <= set(PODS)


def test_count_beyond_the_pods_is_an_error() -> None:
    with pytest.raises(ValueError, match="10 pods match, mode asks for 11"):
        choose(PODS, "count:11", 1)


def test_labels() -> None:
    assert parse_labels("app=a, tier=web") == {"app": "a", "tier": "web"}
    for bad in ("app", "app!=a", "app==a", "=a"):
        with pytest.raises(ValueError):
            parse_labels(bad)
