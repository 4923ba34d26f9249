"""Reports of a run: Markdown, self-contained HTML, JUnit XML and JSON (docs/reports.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..analysis import analyze
from ..analysis.model import Analysis
from . import html, junit, markdown

FILES = {"md": "report.md", "html": "report.html", "junit": "junit.xml", "json": "analysis.json"}


def render(fmt: str, analysis: Analysis) -> str:
    if fmt == "md":
        return markdown.render(analysis)
    if fmt == "html":
        return html.render(analysis)
    if fmt == "junit":
        return junit.render(analysis)
    if fmt == "json":
        return json.dumps(analysis.to_json(), indent=2, default=str) + "\n"
    raise ValueError(f"unknown report format {fmt!r} (choose from {', '.join(FILES)})")


def write_reports(
    run_dir: Path,
    formats: Iterable[str] = ("md", "html", "junit", "json"),
    analysis: Analysis | None = None,
) -> list[Path]:
    """Write each report into the run directory; returns the paths written."""
    formats = list(formats)
    for f in formats:
        if f not in FILES:
            raise ValueError(f"unknown report format {f!r} (choose from {', '.join(FILES)})")
    a = analysis if analysis is not None else analyze(run_dir)
    written = []
    for f in formats:
        path = run_dir / FILES[f]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(render(f, a), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


__all__ = ["FILES", "render", "write_reports"]
