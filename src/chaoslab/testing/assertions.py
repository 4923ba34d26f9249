"""Assertions on a recorded chaos session, with the measured figures in every failure message.

They read the analysis of a ``ChaosSession`` (the same metrics as `chaoslab run`, docs/metrics.md)
and return the measured value, so a test can also log or compare it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from ..analysis.dataloss import check
from ..analysis.model import Analysis


class Recorded(Protocol):
    analysis: Analysis | None
    run_dir: Any

    def finish(self) -> Analysis | None: ...


def _analysis(history: Recorded) -> Analysis:
    analysis = history.analysis if history.analysis is not None else history.finish()
    if analysis is None:
        raise AssertionError("the chaos session recorded nothing to analyse")
    return analysis


def _metric(history: Recorded, name: str) -> Any:
    return _analysis(history).metrics.get(name)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def assert_recovers_within(history: Recorded, seconds: float) -> float:
    """Time to recovery (from the last revert, GUIDE §4) is at most ``seconds``."""
    ttr = _metric(history, "time_to_recovery")
    onset = _metric(history, "impact_onset")
    if ttr is None:
        raise AssertionError(
            f"the system never recovered within the session (bound {seconds}s; impact onset {_fmt(onset)}s)"
        )
    if ttr > seconds:
        raise AssertionError(f"time to recovery {ttr:.2f}s exceeds {seconds}s (impact onset {_fmt(onset)}s)")
    return float(ttr)


def _in_phase(history: Recorded, metric: str, phase: str) -> Any:
    """``metric`` in ``phase`` (baseline, fault, recovery; ``run`` for the whole run)."""
    return _metric(history, metric if phase == "run" else f"{metric}.{phase}")


def assert_error_rate(history: Recorded, phase: str, max: float) -> float:
    """The share of scheduled operations that failed or timed out in ``phase`` is at most ``max``."""
    rate = _in_phase(history, "error_rate", phase)
    if rate is None:
        raise AssertionError(f"no operations were measured in the {phase} phase (did the session run a load?)")
    if rate > max:
        timeouts = _in_phase(history, "timeout_rate", phase)
        raise AssertionError(
            f"error rate in {phase} is {rate:.2%} (of which timeouts {_fmt(timeouts)}), above {max:.2%}"
        )
    return float(rate)


def assert_latency(history: Recorded, phase: str, p99_max: float) -> float:
    """The p99 latency of successful operations in ``phase`` is at most ``p99_max`` seconds."""
    p99 = _in_phase(history, "latency.p99", phase)
    if p99 is None:
        raise AssertionError(f"no successful operation was measured in the {phase} phase")
    if p99 > p99_max:
        p50 = _in_phase(history, "latency.p50", phase)
        raise AssertionError(f"p99 latency in {phase} is {p99 * 1000:.1f}ms (p50 {_fmt(p50)}s), above {p99_max * 1000:.1f}ms")
    return float(p99)


def assert_no_lost_writes(history: Recorded, final_read: Iterable[Any]) -> dict[str, Any]:
    """Every acknowledged write is in ``final_read`` (what the system holds now), none twice."""
    from ..analysis.rundata import load_run

    ops = load_run(history.run_dir).ops
    result = check(ops, {"ok": True, "ids": [str(x) for x in final_read]}, True).to_dict()
    problems = []
    if result.get("lost"):
        problems.append(f"{len(result['lost'])} acknowledged writes lost: {result['lost'][:10]}")
    if result.get("duplicates"):
        problems.append(f"duplicates: {result['duplicates'][:10]}")
    if result.get("resurrected"):
        problems.append(f"writes the client was told failed are present: {result['resurrected'][:10]}")
    if problems:
        raise AssertionError(
            f"{'; '.join(problems)} (acknowledged {result.get('acknowledged')}, read back {result.get('final')})"
        )
    return result
