"""The `observe:` section: what it builds, and one clear line for each mistake."""

from __future__ import annotations

import pytest

from chaoslab.observe import OBSERVERS, ObserveSpec, from_experiment
from chaoslab.observe.ebpf import EbpfTracer, Tally, records
from chaoslab.observe.profile import PhaseProfiler


def test_builds_the_observers_asked_for() -> None:
    assert from_experiment({}) == []
    obs = from_experiment(
        {"ebpf": ["retransmits", "oom_kills", "retransmits"], "profile": {"target": "api"}}
    )
    assert isinstance(obs[0], EbpfTracer) and obs[0].tracers == ["retransmits", "oom_kills"]
    assert isinstance(obs[1], PhaseProfiler) and obs[1].spec.phases == ["baseline", "fault"]


def test_every_key_of_the_section_has_its_observer() -> None:
    assert OBSERVERS.names() == sorted(ObserveSpec.model_fields)


@pytest.mark.parametrize(
    ("observe", "message"),
    [
        (
            {"ebpf": ["retransmit"]},
            "observe.ebpf.0: unknown tracer 'retransmit' (known: retransmits, tcp_state, "
            "resets, oom_kills, sched_wait)",
        ),
        ({"flamegraph": {}}, "observe.flamegraph: unknown field (known: ebpf, profile)"),
        ({"profile": {"phases": ["baseline"]}}, "observe.profile.target: Field required"),
        (
            {"profile": {"target": "api", "phases": ["fault", "fault"]}},
            "observe.profile.phases: Value error, each phase may be listed once",
        ),
        (
            {"profile": {"target": "api", "phases": ["steady"]}},
            "observe.profile.phases.0: Input should be",
        ),
        ({"ebpf": "retransmits"}, "observe.ebpf: Input should be a valid list"),
    ],
)
def test_mistakes_are_one_line_value_errors(observe: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        from_experiment(observe)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_second_split_across_two_prints_is_summed_again() -> None:
    tally = Tally()
    tally.add("retransmits", {"4,5432": 3, "5,5432": 1})
    tally.add("retransmits", {"5,5432": 2, "5,6379": 1})
    tally.add("sched_wait_n", {"5": 10})
    tally.add("sched_wait_sum", {"5": 250})
    tally.add("sched_wait_max", {"5": 90})
    tally.add("sched_wait_max", {"5": 40})
    first = records(tally.take(upto=5))
    assert first == [
        {"t": 4.0, "source": "ebpf", "window": 1.0, "kind": "retransmits", "port": 5432, "count": 3}
    ]
    rest = records(tally.take())
    assert {(r["kind"], r.get("port"), r["count"]) for r in rest} == {
        ("retransmits", 5432, 3),
        ("retransmits", 6379, 1),
        ("sched_wait", None, 10),
    }
    wait = next(r for r in rest if r["kind"] == "sched_wait")
    assert wait["avg_us"] == 25.0 and wait["max_us"] == 90


def test_a_second_that_holds_the_injection_counts_for_the_fault() -> None:
    from chaoslab.analysis.ebpf import ebpf_findings, phase_counts

    records = [
        {"type": "phase", "t": 0.0, "name": "baseline"},
        {"type": "phase", "t": 4.7, "name": "fault"},
        {"type": "phase", "t": 9.7, "name": "recovery"},
        {"type": "phase", "t": 13.0, "name": "end"},
        {"type": "event", "source": "ebpf", "action": "started", "ports": [5432], "t": 0.0},
        # the tracer's window [4, 5) holds the injection at 4.7: its retransmits are the fault's
        {
            "type": "event",
            "source": "ebpf",
            "kind": "retransmits",
            "port": 5432,
            "count": 3,
            "t": 4.0,
            "window": 1.0,
        },
        {
            "type": "event",
            "source": "ebpf",
            "kind": "retransmits",
            "port": 5432,
            "count": 1,
            "t": 11.0,
            "window": 1.0,
        },
    ]
    counts = phase_counts(records)["TCP retransmits on port 5432"]
    assert counts == {"baseline": 0, "fault": 3, "recovery": 1}
    assert any(
        "3 TCP retransmits on port 5432 during the fault (0 in baseline" in f
        for f in ebpf_findings(records)
    )
