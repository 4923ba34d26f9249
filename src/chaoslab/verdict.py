"""The one step after a run: analyze -> verdict -> summary -> reports.

``chaoslab run`` (after the runner closed the journal), the pytest plugin's ``ChaosSession`` and
``chaoslab report`` all end here, so a run's outcome is decided in one place and from the run
directory alone: the journal's ``abort`` records and its ``end`` record (the runner's own
failures), and the analysis (valid, held). An old run therefore re-renders with the outcome it
had, and ``analysis.json`` carries the same outcome as ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .analysis import analyze
from .errors import ExitCode
from .journal import SUMMARY, read_journal, write_json
from .records import Record
from .report import write_reports


@dataclass
class RunResult:
    exit_code: int
    outcome: str
    """held | violated | aborted | error | invalid (| dry-run, when nothing ran)."""
    reason: str | None = None
    run_dir: Path | None = None
    analysis: dict[str, Any] | None = None
    reports: list[Path] = field(default_factory=list)
    """The report files written."""


def decide(journal: list[Record], analysis: dict[str, Any] | None, errors: Iterable[str] = ()) -> RunResult:
    """The outcome and exit code of a run: an abort first (its code), then the runner's failures
    (exit 4), then a violated hypothesis (exit 1; on an invalid run only when lost or poisoned data
    failed it, analysis/names.py LAG_PROOF), then an invalid run (exit 4), then held (exit 0).

    ``errors`` are failures found after the journal closed (the analysis itself failing).
    """
    abort = next((r for r in journal if r["type"] == "abort"), None)
    found = [e for r in journal if r["type"] == "end" for e in r.get("errors", [])] + list(errors)
    if abort is not None:
        code = ExitCode(abort.get("exit_code", ExitCode.ABORTED))
        outcome = "aborted" if code == ExitCode.ABORTED else "error"
        reason: str | None = str(abort.get("reason"))
        if found:
            reason = f"{reason}; " + "; ".join(found)
            if any("could not revert" in e for e in found):
                code = ExitCode.COULD_NOT_RUN
        return RunResult(code, outcome, reason)
    if found:
        return RunResult(ExitCode.COULD_NOT_RUN, "error", "; ".join(found))
    if analysis is not None and analysis.get("held") is False:  # an invalid run too, on data it lost
        failed = [h["name"] for h in analysis.get("hypothesis", []) if not h.get("passed")]
        return RunResult(ExitCode.VIOLATED, "violated", "hypothesis violated: " + ", ".join(failed))
    if analysis is not None and analysis.get("valid") is False:
        return RunResult(ExitCode.COULD_NOT_RUN, "invalid", str(analysis.get("invalid_reason") or "invalid run"))
    return RunResult(ExitCode.HELD, "held")


def conclude(run_dir: Path, formats: Iterable[str] = ("md", "html", "junit", "json")) -> RunResult:
    """Analyse the closed run directory, decide its verdict, write summary.json and the reports."""
    journal = read_journal(run_dir)
    analysis: dict[str, Any] | None = None
    late: list[str] = []
    try:
        analysis = analyze(run_dir)
    except Exception as exc:
        late.append(f"analysis failed: {type(exc).__name__}: {exc}")
    result = decide(journal, analysis, late)
    result.run_dir, result.analysis = run_dir, analysis
    if analysis is not None:
        analysis["outcome"] = result.outcome
    start = next((r for r in journal if r["type"] == "run"), None)
    phases = (analysis or {}).get("phases") or {}
    write_json(run_dir, SUMMARY, {
        "run_id": start.get("run_id") if start else None,
        "title": start.get("title") if start else None,
        "outcome": result.outcome,
        "exit_code": int(result.exit_code),
        "reason": result.reason,
        "t_inject": phases.get("t_inject"),
        "t_revert": phases.get("t_revert"),
        "started_at": start.get("started_at") if start else None,
        "analysis": analysis,
    })
    formats = list(formats)
    if formats:
        try:
            result.reports = write_reports(run_dir, formats, analysis=analysis)
        except Exception as exc:
            result.reason = (result.reason + "; " if result.reason else "") + \
                f"reports failed: {type(exc).__name__}: {exc}"
    return result
