"""Exact impact onset and time to recovery against scripted outages of 0.1 to 5 s (issue 29.2).

The window rule measures both to one window (1 s); ``time_to_recovery.exact`` and
``impact_onset.exact`` locate them to the operation or probe sample. The truth comes from the
service's own clock (its monotonic time when the outage began, plus its scripted length), so
each figure is compared with what really happened, with and without load.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from loadtruth_harness import scenario, truth_service

PROBE_EVERY = 0.25
#: The goal of issue 29: within 0.2 s of the truth, plus one probe interval where only probes
#: measured (load at 100/s locates it to 10 ms; a probe only to its interval).
WITH_LOAD, WITH_PROBES = 0.2, 0.2 + PROBE_EVERY
NOISE = "1s"  # the machine may be busy (stress-ng beside the suite): only a very late generator is invalid


def _run(tmp_path: Path, outage: float, load: bool) -> tuple[dict[str, object], dict[str, float]]:
    with truth_service() as base:
        spec = {"http": {"url": f"{base}/hello", "rate": "100/s", "timeout": "1s", "max_lag": NOISE}}
        return asyncio.run(
            scenario(
                tmp_path,
                base,
                load=spec if load else None,
                baseline=2.0,
                hold=0.05,  # revert at once: the outage outlives the fault, as a slow recovery does
                # three good 1 s windows after the outage take 3 s, 4 s when the outage ends mid-window;
                # 2.5 s more for slow seconds on a busy machine (run 15: with 0.5 s, one slow second
                # after a 5 s outage left no room to see the recovery at all)
                recovery=outage + 6.5,
                inject={"fail_for": outage},
                probe_every=PROBE_EVERY,
            )
        )


def _slow_after(a: dict[str, object], t_fail_end: float) -> bool:
    """A window after the outage judged bad although every operation in it succeeded."""
    wins: list[dict[str, object]] = a["windows"]  # type: ignore[assignment]
    return any(w["good"] is False and w["ok"] == w["n"] and float(w["t"]) + 1.0 > t_fail_end  # type: ignore[arg-type]
               for w in wins)


@pytest.mark.parametrize(
    ("outage", "load"),
    [(0.1, True), (0.7, True), (2.5, True), (5.0, True), (0.1, False), (0.7, False), (5.0, False)],
    ids=lambda v: f"{v}s" if isinstance(v, float) else ("load" if v else "probes"),
)
def test_exact_recovery_is_within_a_fifth_of_a_second_of_the_truth(
    tmp_path: Path, outage: float, load: bool
) -> None:
    a, truth = _run(tmp_path, outage, load)
    within = WITH_LOAD if load else WITH_PROBES
    m: dict[str, float | None] = a["metrics"]  # type: ignore[assignment]
    assert a["valid"], a["invalid_reason"]
    true_ttr = max(0.0, truth["t_fail_end"] - truth["t_revert"])
    exact = m["time_to_recovery.exact"]
    ttr = m["time_to_recovery"]
    assert exact is not None and ttr is not None, a["missing"]
    # never before the outage's end, and within a window of the rule's recovery (a window that
    # held its last failures under the availability tolerance starts before the truth)
    assert true_ttr - within <= exact and abs(exact - ttr) <= 1.0, (exact, true_ttr, ttr)
    if _slow_after(a, truth["t_fail_end"]):
        # A busy machine slowed every request of a window after the outage beyond the steady
        # state's p99 bound: the rule (rightly) waited for the latency too, so the outage's end
        # is not the whole truth here. The bounds above still hold; say what was seen.
        print(f"latency excursion after the outage: exact {exact:.3f}s, outage end {true_ttr:.3f}s")
        return
    assert abs(exact - true_ttr) <= within, (exact, true_ttr, ttr)
    # the window rule stays the definition of "recovered", to one window
    assert abs(ttr - true_ttr) <= 1.0 + WITH_PROBES
    if a["impacted"]:
        true_onset = truth["t_misbehave"] - truth["t_inject"]
        onset = m["impact_onset.exact"]
        assert onset is not None and abs(onset - true_onset) <= within, (onset, true_onset)
    else:
        # only a probe can miss an outage shorter than its interval; load at 100/s cannot
        assert not load and outage < PROBE_EVERY, (outage, a["windows"])
