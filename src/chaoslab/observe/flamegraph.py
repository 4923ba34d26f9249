"""Read py-spy's flamegraph SVGs back: total samples and the functions with the most self time.

py-spy writes inferno SVGs whose frames carry their sample span (``fg:x``, ``fg:w``) and depth
(``y``), so a frame's self time is its width minus its children's, without re-profiling.
"""

from __future__ import annotations

import bisect
import html
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(
    r'<g><title>(?P<title>[^<]*)</title><rect [^>]*?y="(?P<y>[\d.]+)"[^>]*?fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)
_SAMPLES = re.compile(r"\s*\([\d,]+ samples?, [\d.]+%\)$")
_LINE = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class Hot:
    function: str
    """``name (file)`` as py-spy shows it, without the line number."""
    samples: int
    share: float


@dataclass(frozen=True)
class _Frame:
    name: str
    y: float
    x: int
    w: int


def _frames(svg: str) -> list[_Frame]:
    out = []
    for m in _FRAME.finditer(svg):
        title = _SAMPLES.sub("", html.unescape(m["title"]))
        out.append(_Frame(_LINE.sub(")", title), float(m["y"]), int(m["x"]), int(m["w"])))
    return out


def self_samples(path: Path) -> tuple[int, dict[str, int]]:
    """(total samples, self samples of every function) of a py-spy flamegraph SVG."""
    frames = _frames(path.read_text(errors="replace"))
    if not frames:
        return 0, {}
    root_y = min(f.y for f in frames)
    total = sum(f.w for f in frames if f.y == root_y)
    levels: dict[float, list[_Frame]] = defaultdict(list)
    for f in frames:
        levels[f.y].append(f)
    ys = sorted(levels)
    for y in ys:
        levels[y].sort(key=lambda f: f.x)
    self_time: dict[str, int] = defaultdict(int)
    for i, y in enumerate(ys):
        below = levels[ys[i + 1]] if i + 1 < len(ys) else []
        starts = [c.x for c in below]
        for f in levels[y]:
            if f.y == root_y and f.name.startswith("all"):
                continue
            lo = bisect.bisect_left(starts, f.x)
            hi = bisect.bisect_left(starts, f.x + f.w)
            self_time[f.name] += f.w - sum(c.w for c in below[lo:hi])
    return total, {name: n for name, n in self_time.items() if n > 0}


def hot_functions(path: Path, top: int = 5) -> tuple[int, list[Hot]]:
    """(total samples, the ``top`` functions by self samples) of a py-spy flamegraph SVG."""
    total, self_time = self_samples(path)
    ranked = sorted(self_time.items(), key=lambda kv: -kv[1])[:top]
    return total, [Hot(name, n, n / total if total else 0.0) for name, n in ranked]


def grown(before: Path, after: Path, min_samples: int = 5) -> tuple[str, float, float] | None:
    """(function, share before, share after) of the function whose share of self samples grew most
    from ``before`` to ``after``; None when nothing grew on at least ``min_samples`` samples."""
    total_a, a = self_samples(before)
    total_b, b = self_samples(after)
    if not total_a or not total_b:
        return None
    best: tuple[float, str] | None = None
    for name, n in b.items():
        if n < min_samples:
            continue
        rise = n / total_b - a.get(name, 0) / total_a
        if rise > 0 and (best is None or rise > best[0]):
            best = (rise, name)
    if best is None:
        return None
    name = best[1]
    return name, a.get(name, 0) / total_a, b[name] / total_b
