"""A run's outcome and exit code, decided from its journal and its judged hypothesis.

Part of the analysis (``Analysis.verdict``), so analysis.json and summary.json carry the outcome
the analysis decided; ``chaoslab.runner.verdict.conclude`` uses the same rule when the analysis itself
failed (then from the journal alone).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ExitCode
from ..records import Record
from .hypothesis import Judgement


@dataclass(frozen=True)
class Verdict:
    exit_code: ExitCode
    outcome: str
    """held | violated | aborted | error | invalid."""
    reason: str | None = None


def decide(journal: list[Record], judgement: Judgement | None = None, invalid_reason: str | None = None,
           errors: Iterable[str] = ()) -> Verdict:
    """The outcome and exit code of a run: an abort first (its code), then the runner's failures
    (exit 4), then a violated hypothesis (exit 1; on an invalid run only when lost or poisoned data
    failed it, experiment/names.py LAG_PROOF), then an invalid run (exit 4), then held (exit 0).

    ``invalid_reason``: why the run's figures cannot be trusted (None: they can). ``errors`` are
    failures found after the journal closed (the analysis itself failing).
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
        return Verdict(code, outcome, reason)
    if found:
        return Verdict(ExitCode.COULD_NOT_RUN, "error", "; ".join(found))
    if judgement is not None and judgement.held is False:  # an invalid run too, on data it lost
        return Verdict(ExitCode.VIOLATED, "violated", "hypothesis violated: " + ", ".join(judgement.failed))
    if invalid_reason is not None:
        return Verdict(ExitCode.COULD_NOT_RUN, "invalid", invalid_reason)
    return Verdict(ExitCode.HELD, "held")
