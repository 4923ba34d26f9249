"""The one step after a run: analyze -> verdict -> summary -> reports.

``chaoslab run`` (after the runner closed the journal), the pytest plugin's ``ChaosSession`` and
``chaoslab report`` all end here, so a run's outcome is decided in one place and from the run
directory alone: the journal's ``abort`` records and its ``end`` record (the runner's own
failures), and the analysis (valid, held). The outcome is part of the analysis
(analysis/outcome.py), so an old run re-renders with the outcome it had, and ``analysis.json``
carries the same outcome as ``summary.json``. The run directory is read once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..journal import SUMMARY, read_journal, write_json

if TYPE_CHECKING:
    from ..analysis.model import Analysis
    from ..analysis.outcome import Verdict


@dataclass
class RunResult:
    exit_code: int
    outcome: str
    """held | violated | aborted | error | invalid (| dry-run, when nothing ran)."""
    reason: str | None = None
    run_dir: Path | None = None
    analysis: Analysis | None = None
    reports: list[Path] = field(default_factory=list)
    """The report files written."""


def conclude(run_dir: Path, formats: Iterable[str] = ("md", "html", "junit", "json")) -> RunResult:
    """Analyse the closed run directory, decide its verdict, write summary.json and the reports."""
    # imported here, not at the top: `chaoslab run` needs them only once the journal is closed,
    # and importing them before its first sample was start-up time (docs/metrics.md, watching cost)
    from ..analysis.analyze import analyze_run
    from ..analysis.outcome import decide
    from ..analysis.rundata import load_run
    from ..report import write_reports

    journal = read_journal(run_dir)  # read first, and alone: a run whose analysis fails still has an outcome
    analysis: Analysis | None = None
    verdict: Verdict
    try:
        analysis = analyze_run(load_run(run_dir, journal))
        verdict = analysis.verdict
    except Exception as exc:
        verdict = decide(journal, errors=[f"analysis failed: {type(exc).__name__}: {exc}"])
    result = RunResult(verdict.exit_code, verdict.outcome, verdict.reason, run_dir, analysis)
    start = next((r for r in journal if r["type"] == "run"), None)
    document = analysis.to_json() if analysis is not None else None
    write_json(run_dir, SUMMARY, {
        "run_id": start.get("run_id") if start else None,
        "title": start.get("title") if start else None,
        "outcome": result.outcome,
        "exit_code": int(result.exit_code),
        "reason": result.reason,
        "t_inject": analysis.phases.t_inject if analysis is not None else None,
        "t_revert": analysis.phases.t_revert if analysis is not None else None,
        "started_at": start.get("started_at") if start else None,
        "analysis": document,
    })
    formats = list(formats)
    if formats:
        try:
            result.reports = write_reports(run_dir, formats, analysis=analysis)
        except Exception as exc:
            result.reason = (result.reason + "; " if result.reason else "") + \
                f"reports failed: {type(exc).__name__}: {exc}"
    return result
