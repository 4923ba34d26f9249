"""Inline SVG charts (no JavaScript, no CDN): time series with fault windows shaded, probe lanes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

W, H = 900, 200
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 24, 28
FAULT_FILL = "#f4b6b6"


@dataclass
class Series:
    label: str
    color: str
    points: list[tuple[float, float | None]]  # None: a gap (an empty window)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    for exp in range(-6, 10):
        for step in (1, 2, 2.5, 5):
            cand = step * 10.0**exp
            if cand >= v:
                return cand
    return v


def line_chart(
    title: str,
    series: Sequence[Series],
    t_end: float,
    faults: Sequence[tuple[float, float]],
    fmt_y: Callable[[float], str],
    y_max: float | None = None,
) -> str:
    values = [v for s in series for _, v in s.points if v is not None]
    hi = y_max if y_max is not None else _nice_max(max(values, default=0.0) * 1.05)
    t_end = max(t_end, 1.0)
    legend, rows = _legend_layout(title, [s.label for s in series])
    top = TOP + LEGEND_ROW * rows  # legend rows under the title push the plot down
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    height = top + ph + BOTTOM

    def x(t: float) -> float:
        return LEFT + pw * min(max(t, 0.0), t_end) / t_end

    def y(v: float) -> float:
        return top + ph * (1 - min(max(v, 0.0), hi) / hi)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="100%" role="img" aria-label="{escape(title)}">']
    out.append(f'<text x="{LEFT}" y="16" class="ct">{escape(title)}</text>')
    for a, b in faults:
        out.append(f'<rect x="{x(a):.1f}" y="{top}" width="{max(1.0, x(b) - x(a)):.1f}" height="{ph}" fill="{FAULT_FILL}" opacity="0.5"><title>fault {a:.1f}s-{b:.1f}s</title></rect>')
    for i in range(5):
        v = hi * i / 4
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="ax">{escape(fmt_y(v))}</text>')
    step = max(1, round(t_end / 10))
    for t in range(0, int(t_end) + 1, step):
        out.append(f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="middle" class="ax">{t}s</text>')
    out.append(f'<rect x="{LEFT}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for s in series:
        for path in _paths(s.points, x, y):
            out.append(f'<polyline fill="none" stroke="{s.color}" stroke-width="1.8" points="{path}"/>')
    for s, (lx, ly) in zip(series, legend, strict=True):
        out.append(f'<text x="{lx:.0f}" y="{ly}" class="lg" fill="{s.color}">■ {escape(s.label)}</text>')
    out.append("</svg>")
    return "".join(out)


LEGEND_ROW = 16
"""Height of a legend row under the title (12 px text)."""


def text_width(text: str, px: float) -> float:
    """A generous estimate of rendered text width: no font metrics without a browser, so the
    widest common sans-serif glyphs (0.62 em on average for lower case and digits)."""
    return len(text) * px * 0.62


def _legend_layout(title: str, labels: Sequence[str]) -> tuple[list[tuple[float, int]], int]:
    """Where each legend item goes, and how many rows it takes under the title. On the title's
    line, right-aligned, when every item fits beside the title; otherwise in rows from the left
    under it (the eBPF chart's eight kinds drew over its title)."""
    widths = [14 + text_width(label, 12) for label in labels]  # "■ " and the label
    gap = 16
    beside = (W - RIGHT) - (LEFT + text_width(title, 13) * 1.1 + gap)  # the title is bold
    if sum(widths) + gap * max(0, len(widths) - 1) <= beside:
        out: list[tuple[float, int]] = []
        lx = float(W - RIGHT)
        for w in reversed(widths):
            lx -= w
            out.append((lx, 16))
            lx -= gap
        return out[::-1], 0
    out, row, lx = [], 1, float(LEFT)
    for w in widths:
        if lx > LEFT and lx + w > W - RIGHT:
            row, lx = row + 1, float(LEFT)
        out.append((lx, 16 + LEGEND_ROW * row))
        lx += w + gap
    return out, row


def _paths(points: list[tuple[float, float | None]], x: Callable[[float], float], y: Callable[[float], float]) -> list[str]:
    paths: list[list[str]] = [[]]
    for t, v in points:
        if v is None:
            if paths[-1]:
                paths.append([])
            continue
        paths[-1].append(f"{x(t):.1f},{y(v):.1f}")
    return [" ".join(p) for p in paths if p]


def lanes(probes: dict[str, list[list[object]]], t_end: float, faults: Sequence[tuple[float, float]]) -> str:
    """One lane per probe: a green tick per passing sample, red per failing one."""
    lane_h = 22
    h = TOP + lane_h * max(1, len(probes)) + BOTTOM
    t_end = max(t_end, 1.0)
    pw = W - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + pw * min(max(t, 0.0), t_end) / t_end

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" width="100%" role="img" aria-label="probe status">']
    out.append(f'<text x="{LEFT}" y="16" class="ct">Probe status</text>')
    for a, b in faults:
        out.append(f'<rect x="{x(a):.1f}" y="{TOP}" width="{max(1.0, x(b) - x(a)):.1f}" height="{h - TOP - BOTTOM}" fill="{FAULT_FILL}" opacity="0.5"/>')
    for i, (name, samples) in enumerate(probes.items()):
        top = TOP + i * lane_h
        out.append(f'<text x="{LEFT - 6}" y="{top + 15}" text-anchor="end" class="ax">{escape(name)}</text>')
        for t, ok, err in samples:
            color = "#2e9d4b" if ok else "#d43d3d"
            tip = f"{float(t):.2f}s " + ("ok" if ok else f"FAIL {err or ''}")  # type: ignore[arg-type]
            out.append(f'<rect x="{x(float(t)):.1f}" y="{top + 3}" width="3" height="{lane_h - 6}" fill="{color}"><title>{escape(tip)}</title></rect>')  # type: ignore[arg-type]
    step = max(1, round(t_end / 10))
    for t in range(0, int(t_end) + 1, step):
        out.append(f'<text x="{x(t):.1f}" y="{h - 8}" text-anchor="middle" class="ax">{t}s</text>')
    out.append("</svg>")
    return "".join(out)
