"""Reports of a run: Markdown, self-contained HTML, JUnit XML and JSON (docs/reports.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..analysis import analyze
from ..analysis.model import Analysis
from ..registry import Registry
from . import html, junit, markdown


@dataclass(frozen=True)
class Format:
    """A report format: the file it is written to in the run directory, and its renderer."""

    file: str
    render: Callable[[Analysis], str]


def _json(analysis: Analysis) -> str:
    return json.dumps(analysis.to_json(), indent=2, default=str) + "\n"


FORMATS: Registry[Format] = Registry("report format")
FORMATS.add("md", Format("report.md", markdown.render))
FORMATS.add("html", Format("report.html", html.render))
FORMATS.add("junit", Format("junit.xml", junit.render))
FORMATS.add("json", Format("analysis.json", _json))

FILES = {name: FORMATS.get(name).file for name in FORMATS.registered()}
"""Format -> file name, in the order they are registered (the console lists them so)."""


def _format(name: str) -> Format:
    try:
        return FORMATS.get(name)
    except KeyError as exc:  # the registry's one line: unknown report format 'pdf' (known: ...)
        raise ValueError(exc.args[0]) from None


def render(fmt: str, analysis: Analysis) -> str:
    return _format(fmt).render(analysis)


def write_reports(
    run_dir: Path,
    formats: Iterable[str] = ("md", "html", "junit", "json"),
    analysis: Analysis | None = None,
) -> list[Path]:
    """Write each report into the run directory; returns the paths written."""
    formats = list(formats)
    for f in formats:
        _format(f)
    a = analysis if analysis is not None else analyze(run_dir)
    written = []
    for f in formats:
        path = run_dir / FILES[f]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(render(f, a), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


__all__ = ["FILES", "FORMATS", "Format", "render", "write_reports"]
