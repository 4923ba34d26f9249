"""Chart layout: a legend never draws over its chart's title (the eBPF chart's eight kinds did),
checked on the layout and, where Chromium is installed, on what it renders."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from chaoslab.report import charts
from chaoslab.report.html import _CSS

KINDS = [
    "sched_wakeup", "tcp_reset", "tcp_retransmit", "tcp_state_close", "tcp_state_close_wait",
    "tcp_state_established", "tcp_state_fin_wait1", "tcp_state_syn_sent",
]  # fmt: skip
EBPF_TITLE = "Kernel events per second (eBPF)"


def chart(title: str, labels: list[str]) -> str:
    series = [
        charts.Series(label, "#2f6fb3", [(t + 0.5, float(i + t % 5)) for t in range(30)])
        for i, label in enumerate(labels)
    ]
    return charts.line_chart(title, series, 30.0, [(10.0, 20.0)], lambda v: f"{v:.0f}")


def boxes(svg: str) -> tuple[tuple[float, float, float], list[tuple[float, float, str]], float]:
    """(title x, y, width), legend items (x, y, label), the plot's top, from the SVG."""
    title = re.search(r'<text x="([\d.]+)" y="(\d+)" class="ct">([^<]*)</text>', svg)
    assert title is not None
    items = [
        (float(x), float(y), label)
        for x, y, label in re.findall(
            r'<text x="([\d.]+)" y="(\d+)" class="lg"[^>]*>■ ([^<]*)<', svg
        )
    ]
    plot = re.search(r'<rect x="\d+" y="(\d+)" width="\d+" height="\d+" fill="none"', svg)
    assert plot is not None
    width = charts.text_width(title.group(3), 13) * 1.1
    return (float(title.group(1)), float(title.group(2)), width), items, float(plot.group(1))


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_the_legend_stays_clear_of_the_title_and_the_plot(n: int) -> None:
    svg = chart(EBPF_TITLE, KINDS[:n])
    (tx, ty, tw), items, plot_top = boxes(svg)
    assert [label for _, _, label in items] == KINDS[:n]
    for x, y, label in items:
        right = x + 14 + charts.text_width(label, 12)
        assert y != ty or x >= tx + tw, f"{label!r} drawn over the title"
        assert x >= charts.LEFT and right <= charts.W - charts.RIGHT + 0.5, f"{label!r} outside"
        assert y + 4 <= plot_top, f"{label!r} drawn over the plot"
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, label in items:
        rows.setdefault(y, []).append((x, label))
    for row in rows.values():
        for (x1, a), (x2, _) in itertools.pairwise(row):
            assert x1 + 14 + charts.text_width(a, 12) <= x2, f"{a!r} overlaps the next item"
    viewbox_h = float(re.search(r'viewBox="0 0 \d+ (\d+)"', svg).group(1))  # type: ignore[union-attr]
    assert viewbox_h - plot_top == charts.H - charts.TOP, "the plot keeps its height"


# Measures the rendered boxes (SVG user units) and writes any overlap into the page.
MEASURE = """<script>
const bad = [];
const hit = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
for (const svg of document.querySelectorAll('svg')) {
  const width = svg.viewBox.baseVal.width;
  const title = svg.querySelector('text.ct').getBBox();
  const plot = svg.querySelector('rect[fill="none"]').getBBox();
  const items = [...svg.querySelectorAll('text.lg')].map(e => [e.textContent, e.getBBox()]);
  items.forEach(([label, b], i) => {
    if (hit(b, title)) bad.push(label + ' over the title');
    if (hit(b, plot)) bad.push(label + ' over the plot');
    if (b.x < 0 || b.x + b.width > width) bad.push(label + ' outside');
    items.slice(i + 1).forEach(([other, c]) => { if (hit(b, c)) bad.push(label + ' over ' + other); });
  });
}
document.body.setAttribute('data-bad', JSON.stringify(bad));
document.body.setAttribute('data-count', document.querySelectorAll('text.lg').length);
</script>"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_chromium_renders_no_legend_over_a_title(tmp_path: Path) -> None:
    svgs = [chart(EBPF_TITLE, KINDS[:n]) for n in (1, 3, 5, 8)]
    svgs.append(chart("Latency of successful operations (from due time)", ["p50", "p99"]))
    page = tmp_path / "charts.html"
    page.write_text(
        f"<html><head><style>{_CSS}</style></head><body style='width:900px'>"
        f"{''.join(svgs)}{MEASURE}</body></html>"
    )
    proc = subprocess.run(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,1600",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r"data-bad=\"([^\"]*)\" data-count=\"(\d+)\"", proc.stdout)
    assert found is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert int(found.group(2)) == 1 + 3 + 5 + 8 + 2
    assert json.loads(found.group(1).replace("&quot;", '"')) == []
