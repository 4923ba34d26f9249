"""The verdict mapping: what a journal and its analysis mean as an outcome and an exit code.

The analysis is given as the fields of analysis.json the rule reads (valid, held, hypothesis,
invalid_reason), turned into the typed parts ``decide`` takes."""

from __future__ import annotations

from typing import Any

import pytest

from chaoslab.analysis.hypothesis import Assertion, Judgement
from chaoslab.analysis.outcome import Verdict
from chaoslab.analysis.outcome import decide as decide_typed
from chaoslab.errors import ExitCode
from chaoslab.records import Record

HELD: dict[str, Any] = {
    "valid": True,
    "held": True,
    "hypothesis": [{"name": "lost_writes", "passed": True}],
}
VIOLATED: dict[str, Any] = {
    "valid": True,
    "held": False,
    "hypothesis": [
        {"name": "lost_writes", "passed": False},
        {"name": "time_to_recovery", "passed": True},
    ],
}
INVALID: dict[str, Any] = {
    "valid": False,
    "held": None,
    "invalid_reason": "the load generator fell behind",
}


def decide(records: list[Record], analysis: dict[str, Any] | None, late: list[str] | None = None) -> Verdict:
    if analysis is None:
        return decide_typed(records, errors=late or [])
    judgement = Judgement(
        [Assertion(h["name"], None, {}, "", h["passed"]) for h in analysis.get("hypothesis", [])],
        analysis["held"],
    )
    invalid = str(analysis["invalid_reason"]) if analysis["valid"] is False else None
    return decide_typed(records, judgement, invalid, late or [])


def journal(*extra: Record, errors: list[str] | None = None) -> list[Record]:
    return [
        {"type": "phase", "t": 0.0, "name": "baseline"},
        *extra,
        {"type": "phase", "t": 9.0, "name": "end"},
        {"type": "end", "t": 9.0, "errors": errors or []},
    ]


def abort(reason: str, code: ExitCode, t: float = 3.0) -> Record:
    return {"type": "abort", "t": t, "reason": reason, "exit_code": int(code)}


@pytest.mark.parametrize(
    ("records", "analysis", "late", "expected"),
    [
        (journal(), HELD, [], (ExitCode.HELD, "held", None)),
        (journal(), None, [], (ExitCode.HELD, "held", None)),  # no hypothesis to judge
        (
            journal(),
            {"valid": True, "held": None, "hypothesis": []},
            [],
            (ExitCode.HELD, "held", None),
        ),
        (
            journal(),
            VIOLATED,
            [],
            (ExitCode.VIOLATED, "violated", "hypothesis violated: lost_writes"),
        ),
        (
            journal(),
            INVALID,
            [],
            (ExitCode.COULD_NOT_RUN, "invalid", "the load generator fell behind"),
        ),
        # a late load cannot clear a run, but data it lost is lost all the same
        (
            journal(),
            {**INVALID, "held": False, "hypothesis": [{"name": "poison_stored_as_valid", "passed": False}]},
            [],
            (ExitCode.VIOLATED, "violated", "hypothesis violated: poison_stored_as_valid"),
        ),
        # an abort outranks the hypothesis; the first abort's reason and code are the run's
        (
            journal(
                abort("halted: ops", ExitCode.ABORTED), abort("later", ExitCode.COULD_NOT_RUN, 4.0)
            ),
            VIOLATED,
            [],
            (ExitCode.ABORTED, "aborted", "halted: ops"),
        ),
        (
            journal(abort("probe 'h' crashed: boom", ExitCode.COULD_NOT_RUN)),
            HELD,
            [],
            (ExitCode.COULD_NOT_RUN, "error", "probe 'h' crashed: boom"),
        ),
        # the runner's own failures: exit 4 over a held or violated hypothesis
        (
            journal(errors=["rollback[0] failed: HTTP 500"]),
            VIOLATED,
            [],
            (ExitCode.COULD_NOT_RUN, "error", "rollback[0] failed: HTTP 500"),
        ),
        (
            journal(),
            HELD,
            ["analysis failed: KeyError: 't'"],
            (ExitCode.COULD_NOT_RUN, "error", "analysis failed: KeyError: 't'"),
        ),
        # an aborted run whose revert failed: exit 4, both reasons told
        (
            journal(
                abort("interrupted by SIGINT", ExitCode.ABORTED),
                errors=["could not revert pause of 42: gone"],
            ),
            HELD,
            [],
            (
                ExitCode.COULD_NOT_RUN,
                "aborted",
                "interrupted by SIGINT; could not revert pause of 42: gone",
            ),
        ),
        (
            journal(
                abort("interrupted by SIGINT", ExitCode.ABORTED), errors=["rollback[0] failed: x"]
            ),
            HELD,
            [],
            (ExitCode.ABORTED, "aborted", "interrupted by SIGINT; rollback[0] failed: x"),
        ),
    ],
)
def test_verdict(
    records: list[Record],
    analysis: dict[str, Any] | None,
    late: list[str],
    expected: tuple[ExitCode, str, str | None],
) -> None:
    result = decide(records, analysis, late)
    assert (result.exit_code, result.outcome, result.reason) == expected


def test_a_crashed_run_without_an_end_record_is_judged_on_its_analysis() -> None:
    records: list[Record] = [{"type": "phase", "t": 0.0, "name": "baseline"}]
    assert decide(records, VIOLATED).exit_code == ExitCode.VIOLATED
