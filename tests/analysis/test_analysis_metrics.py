"""analyze() on hand-built run directories whose every number is known."""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_rundirs import ops, samples, timeline, write_run

from chaoslab.analysis import analyze, metric_names, validate_metric_name

FAULT = (5.0, 8.0)


def _in_fault(t: float) -> bool:
    return FAULT[0] <= t < FAULT[1]


def test_metric_names_and_did_you_mean() -> None:
    for name in (
        "time_to_recovery",
        "lost_writes",
        "error_rate.baseline",
        "latency.p99.fault",
        "availability.fault",
        "detection_time",
        "duplicates",
        "resilience_score",
        "probe.health.availability.recovery",
    ):
        validate_metric_name(name, ["health"])
    with pytest.raises(ValueError, match="did you mean 'time_to_recovery'"):
        validate_metric_name("time_to_recovry", ["health"])
    with pytest.raises(ValueError, match=r"did you mean 'latency\.p99\.fault'"):
        validate_metric_name("latency.p99.faults", [])
    with pytest.raises(
        ValueError,
        match=r"unknown probe 'helth'.*did you mean 'probe\.health\.availability\.fault'",
    ):
        validate_metric_name("probe.helth.availability.fault", ["health"])
    with pytest.raises(ValueError, match="unknown hypothesis key 'banana'"):
        validate_metric_name("banana", [])
    assert "probe.db.failures.fault" in metric_names(["db"])


def test_phase_rates_latency_windows_and_recovery(tmp_path: Path) -> None:
    # failing from 5 s to 10 s: 2 s past the revert at 8 s; latency 10 ms, 20 ms in recovery
    history = ops(
        50,
        15,
        outcome=lambda t: "timeout" if 5 <= t < 7 else "refused" if 7 <= t < 10 else "ok",
        latency=lambda t: 0.02 if t >= 10 else 0.01,
    )
    run = write_run(
        tmp_path,
        journal=timeline(),
        ops=history,
        experiment={
            "hypothesis": {"time_to_recovery": {"max": 3.0}, "availability.recovery": {"min": 0.9}}
        },
    )
    a = analyze(run)
    m = a["metrics"]
    assert (
        a["phases"]["t_inject"] == 5.0
        and a["phases"]["t_revert"] == 8.0
        and a["phases"]["t_end"] == 15.0
    )
    assert m["availability.baseline"] == 1.0 and m["availability.fault"] == 0.0
    assert m["timeout_rate.fault"] == pytest.approx(2 / 3) and m[
        "fail_rate.fault"
    ] == pytest.approx(1 / 3)
    assert m["availability.recovery"] == pytest.approx(5 / 7)
    assert m["error_rate"] == pytest.approx(1 - (250 + 250) / 750)
    assert m["latency.p99.baseline"] == pytest.approx(0.01, rel=0.01)
    assert m["latency.p50.recovery"] == pytest.approx(0.02, rel=0.01)
    assert (
        m["latency.p99.fault"] is None
        and "no successful operation" in a["missing"]["latency.p99.fault"]
    )
    assert m["throughput.baseline"] == pytest.approx(50.0)
    assert m["impact_onset"] == 0.0
    assert m["time_to_recovery"] == 2.0 and m["time_to_recovery.from_impact"] == 5.0
    assert m["detection_time"] is None and a["missing"]["detection_time"] == "undetected"
    assert [v["passed"] for v in a["hypothesis"]] == [True, False]
    assert a["held"] is False and a["valid"]
    assert a["windows"][6]["good"] is False and a["windows"][11]["good"] is True
    assert any("recovered 2.0s after the fault was reverted" in f for f in a["findings"])


def test_a_blip_long_after_a_harmless_fault_is_not_its_impact(tmp_path: Path) -> None:
    # the fault (5-8 s) changes nothing; a 1 s blip at 13 s comes after 3+ good windows past the revert
    history = ops(50, 20, outcome=lambda t: "timeout" if 13 <= t < 14 else "ok")
    a = analyze(write_run(tmp_path, journal=timeline(end=20.0), ops=history))
    assert not a["impacted"]
    assert a["metrics"]["time_to_recovery"] == 0.0 and a["metrics"]["impact_onset"] is None
    # the same blip right after the revert (before the system was steady again) is the fault's
    history = ops(50, 20, outcome=lambda t: "timeout" if 9 <= t < 10 else "ok")
    a = analyze(write_run(tmp_path / "b", journal=timeline(end=20.0), ops=history))
    assert a["impacted"] and a["metrics"]["time_to_recovery"] == 2.0


def test_slow_but_successful_windows_are_an_impact(tmp_path: Path) -> None:
    history = ops(50, 15, latency=lambda t: 1.5 if 5 <= t < 9 else 0.01)
    a = analyze(write_run(tmp_path, journal=timeline(), ops=history))
    assert a["impacted"] and a["metrics"]["availability.fault"] == 1.0
    assert a["metrics"]["time_to_recovery"] == 1.0
    assert a["metrics"]["latency.p99.fault"] == pytest.approx(1.5, rel=0.01)


def test_detection_ignores_probes_already_failing_and_counts_detect_events(tmp_path: Path) -> None:
    journal = (
        timeline()
        + samples("flaky", 0.5, 15, lambda t: True)
        + samples("health", 0.5, 15, _in_fault)
    )
    journal.append({"type": "sample", "t": 5.2, "probe": "quiet", "ok": False})
    a = analyze(
        write_run(
            tmp_path / "a",
            journal=journal,
            experiment={
                "probes": {
                    "flaky": {"every": 0.5},
                    "health": {"every": 0.5},
                    "quiet": {"signal": False},
                }
            },
        )
    )
    assert a["metrics"]["detection_time"] == 0.0 and a["detected_by"].startswith("probe health")
    journal2 = [
        *timeline(),
        {"type": "event", "t": 6.25, "source": "stack", "kind": "breaker_open", "detect": True},
    ]
    a2 = analyze(write_run(tmp_path / "b", journal=journal2))
    assert a2["metrics"]["detection_time"] == 1.25


def test_a_sample_in_flight_at_the_injection_that_times_out_is_the_first_signal(tmp_path: Path) -> None:
    """A sample is stamped with its start. One sent 40 ms before the injection that a pause caught
    in flight times out after it: that is the fault's first signal (at the moment the timeout
    came), not a probe that was failing at the end of the baseline (seen beside stress-ng: the
    run was reported undetected)."""
    base = samples("health", 0.2, 4.9, lambda t: False)  # ok, the last at 4.8
    in_flight = {"type": "sample", "t": 4.96, "probe": "health", "ok": False, "value": None,
                 "latency": 0.5, "error": "timeout after 0.5s"}
    after = [{"type": "sample", "t": 5.46 + 0.6 * i, "probe": "health", "ok": False, "value": None,
              "latency": 0.5, "error": "timeout after 0.5s"} for i in range(4)]
    a = analyze(write_run(tmp_path / "a", journal=[*timeline(), *base, in_flight, *after],
                          experiment={"probes": {"health": {"every": 0.2, "timeout": 0.5}}}))
    assert a["metrics"]["detection_time"] == pytest.approx(0.46) and "timeout" in a["detected_by"]
    # a sample whose failure was known before the injection is the baseline's state: undetected
    early = {**in_flight, "t": 4.4}  # the probe's samples are sequential: none after it before 4.9
    b = analyze(write_run(tmp_path / "b", journal=[*timeline(), *base[:-3], early, *after],
                          experiment={"probes": {"health": {"every": 0.2, "timeout": 0.5}}}))
    assert b["metrics"]["detection_time"] is None
    # the earliest signal wins, whichever record was written first
    event = {"type": "event", "t": 5.1, "source": "stack", "kind": "breaker_open", "detect": True}
    c = analyze(write_run(tmp_path / "c", journal=[*timeline(), *base, in_flight, event, *after],
                          experiment={"probes": {"health": {"every": 0.2, "timeout": 0.5}}}))
    assert c["metrics"]["detection_time"] == pytest.approx(0.1) and c["detected_by"].startswith("stack")


def test_run_without_load_uses_probes(tmp_path: Path) -> None:
    journal = timeline() + samples("health", 0.25, 15, lambda t: 5 <= t < 9.5)
    a = analyze(
        write_run(
            tmp_path,
            journal=journal,
            experiment={
                "probes": {"health": {"every": 0.25}},
                "hypothesis": {
                    "error_rate.fault": {"max": 0.1},
                    "probe.health.availability.fault": {"min": 0.5},
                },
            },
        )
    )
    m = a["metrics"]
    assert a["steady_state"]["basis"] == "probes"
    assert (
        m["probe.health.availability.baseline"] == 1.0
        and m["probe.health.availability.fault"] == 0.0
    )
    assert m["probe.health.failures.recovery"] == 6
    assert m["time_to_recovery"] == 2.0  # first good window at 10 s, revert at 8 s
    assert m["error_rate.fault"] is None
    verdict = a["hypothesis"]
    assert verdict[0]["passed"] is False and verdict[0]["note"] == "the experiment has no load"
    assert verdict[1]["passed"] is False and verdict[1]["value"] == 0.0


def test_never_recovered_is_a_violation_not_a_number(tmp_path: Path) -> None:
    journal = timeline() + samples("health", 0.5, 15, lambda t: t >= 5)
    a = analyze(
        write_run(
            tmp_path, journal=journal, experiment={"hypothesis": {"time_to_recovery": {"max": 60}}}
        )
    )
    assert a["metrics"]["time_to_recovery"] is None
    assert a["hypothesis"][0]["passed"] is False
    assert a["hypothesis"][0]["note"] == "not recovered by the end of the run"
    assert any("did not recover" in f for f in a["findings"])


def test_partial_journal_of_a_crashed_run(tmp_path: Path) -> None:
    journal = timeline(revert=None, end=None) + samples("health", 0.5, 7, _in_fault)
    run = write_run(
        tmp_path,
        journal=journal,
        ops=ops(50, 7, outcome=lambda t: "timeout" if t >= 5 else "ok"),
        experiment={"hypothesis": {"time_to_recovery": {"max": 10}}},
    )
    with open(run / "journal.jsonl", "a") as f:
        f.write('{"type": "sample", "t": 7.1, "pro')  # torn by the crash
    a = analyze(run)
    assert a["phases"]["complete"] is False and a["phases"]["t_revert"] is None
    assert a["phases"]["t_end"] == pytest.approx(6.5)
    assert a["metrics"]["availability.fault"] == 0.0
    assert a["metrics"]["time_to_recovery"] is None
    assert a["held"] is False
    assert any("crashed" in f for f in a["findings"])


def test_crash_before_injection_has_nothing_to_judge(tmp_path: Path) -> None:
    a = analyze(write_run(tmp_path, journal=[{"type": "phase", "t": 0.0, "name": "baseline"}]))
    assert a["held"] is None and a["phases"]["t_inject"] is None
    assert a["metrics"]["resilience_score"] is None
    assert any("No fault was injected" in f for f in a["findings"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert analyze(empty)["held"] is None


def test_generator_lag_makes_the_run_invalid(tmp_path: Path) -> None:
    a = analyze(
        write_run(
            tmp_path,
            journal=timeline(),
            ops=ops(50, 15, lag=0.3),
            experiment={"hypothesis": {"lost_writes": {"max": 0}}},
        )
    )
    assert a["valid"] is False and "lag p99 300 ms > 100 ms" in a["invalid_reason"]
    assert a["held"] is None
    assert a["metrics"]["generator_lag.p99"] == pytest.approx(0.3, rel=0.01)


@pytest.mark.parametrize(
    ("line", "held"),
    [("lost_writes", False), ("invariant.balance", False), ("latency.p99.fault", None)],
)
def test_late_load_cannot_clear_a_run_but_lost_data_still_violates_it(
    tmp_path: Path, line: str, held: bool | None
) -> None:
    """A write acknowledged on late load and then lost is lost all the same (names.LAG_PROOF);
    a slow fault phase measured on late load proves nothing either way."""
    late = ops(50, 15, lag=0.3, latency=lambda t: 0.5 if 5 <= t < 8 else 0.01)
    stored = [o["key"] for o in late if o["ack"]][1:]  # the first acknowledged write is missing
    bound = {"max": 0} if line != "latency.p99.fault" else {"max": 0.1}
    a = analyze(
        write_run(
            tmp_path,
            journal=timeline(),
            ops=late,
            verify={"ok": True, "ids": stored, "attempts": 1,
                    "invariants": {"balance": {"violations": 2}}},
            experiment={"verify": {"http": {"url": "x"}}, "hypothesis": {line: bound}},
        )
    )
    assert a["valid"] is False
    assert a["hypothesis"][0]["passed"] is False, a["hypothesis"]
    assert a["held"] is held


def test_resilience_score_parts(tmp_path: Path) -> None:
    journal = timeline() + samples("health", 0.5, 15, lambda t: 5.5 <= t < 9)
    history = ops(50, 15, outcome=lambda t: "refused" if 5 <= t < 8 else "ok")
    a = analyze(write_run(tmp_path, journal=journal, ops=history))
    parts = a["score_parts"]
    assert parts["availability"] == pytest.approx((0 + 1) / 2)
    assert parts["recovery"] == 1.0  # good again from 8 s: recovered at the revert
    assert parts["detection"] == pytest.approx(1 - 0.5 / 60, abs=1e-3)
    assert a["metrics"]["resilience_score"] == pytest.approx(
        100 * (0.4 * 0.5 + 0.2 + 0.25 + 0.15 * parts["detection"]), abs=0.1
    )


def test_stack_health_events_count_as_detection(tmp_path: Path) -> None:
    journal = [
        *timeline(),
        {"type": "event", "t": 5.5, "source": "stack", "kind": "health", "status": "healthy"},
        {
            "type": "event",
            "t": 6.0,
            "source": "stack",
            "kind": "health",
            "status": "unhealthy",
            "message": "api is unhealthy (HTTP 503)",
        },
    ]
    a = analyze(write_run(tmp_path, journal=journal))
    assert (
        a["metrics"]["detection_time"] == 1.0
        and a["detected_by"] == "stack: api is unhealthy (HTTP 503)"
    )


def test_the_final_read_is_not_part_of_the_recovery_phase(tmp_path: Path) -> None:
    journal = [r for r in timeline() if r["type"] != "end" and r.get("name") != "end"]
    journal += [
        {"type": "phase", "t": 15.0, "name": "verify"},
        {"type": "phase", "t": 45.0, "name": "end"},
        {"type": "end", "t": 45.0, "errors": []},
        {"type": "sample", "t": 40.0, "probe": "health", "ok": False},
    ]
    journal += samples("health", 0.5, 15, lambda t: False)
    a = analyze(write_run(tmp_path, journal=journal, ops=ops(50, 15)))
    assert a["phases"]["t_end"] == 15.0
    assert a["metrics"]["throughput.recovery"] == pytest.approx(50.0)
    assert a["metrics"]["probe.health.failures"] == 0


def test_keys_this_experiment_could_never_measure() -> None:
    validate_metric_name("error_rate.fault", [], has_load=True, has_verify=False)
    with pytest.raises(ValueError, match="has no load"):
        validate_metric_name("error_rate.fault", [], has_load=False)
    with pytest.raises(ValueError, match="has no load"):
        validate_metric_name("latency.p99", [], has_load=False)
    with pytest.raises(ValueError, match="needs a verify"):
        validate_metric_name("lost_writes", [], has_verify=False)
    validate_metric_name("probe.db.availability.fault", ["db"], has_load=False, has_verify=False)
    validate_metric_name("time_to_recovery", [], has_load=False, has_verify=False)
