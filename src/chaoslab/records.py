"""The journal's record types, defined once: the runner and the session write them, the analysis,
the verdict, the console and the observers read them.

Each line of ``journal.jsonl`` is one of these, with ``type`` naming which and ``t`` the seconds
on the run's monotonic clock (0 = the journal's start). ``event`` records carry, beyond
``source`` and ``kind``, whatever their source observed (a stack exit's code, an eBPF count).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict, cast

PhaseName = Literal["baseline", "fault", "recovery", "verify", "end"]
FaultAction = Literal["inject", "revert", "end", "tick", "error"]
"""``end`` closes an irreversible fault's window (a kill), as ``revert`` does a reversible one's."""


class RunRecord(TypedDict):
    type: Literal["run"]
    t: float
    run_id: str
    title: str
    started_at: float
    """Wall-clock time (epoch seconds) of the clock's zero."""
    experiment: NotRequired[str]
    pid: NotRequired[int]
    process_started_at: NotRequired[float]
    """Wall-clock time (epoch seconds) the writing process started: its start-up cost."""


class PhaseRecord(TypedDict):
    type: Literal["phase"]
    t: float
    name: PhaseName
    cpu: NotRequired[float]
    """CPU seconds the writing process (runner, probes, load) had used by then: what watching cost."""


class FaultRecord(TypedDict):
    type: Literal["fault"]
    t: float
    action: FaultAction
    step: int
    fault: str
    target: str | None
    describe: str
    occurrence: NotRequired[int]
    state: NotRequired[Any]
    """What the fault needs to revert itself (inject only)."""
    error: NotRequired[str]


class SampleRecord(TypedDict):
    type: Literal["sample"]
    t: float
    probe: str
    ok: bool
    value: Any
    latency: float | None
    error: str | None


class RollbackRecord(TypedDict):
    type: Literal["rollback"]
    t: float
    index: int
    ok: bool
    value: Any
    latency: float | None
    error: str | None


class StopRecord(TypedDict):
    type: Literal["stop"]
    t: float
    condition: str
    reason: str


class AbortRecord(TypedDict):
    type: Literal["abort"]
    t: float
    reason: str
    exit_code: int


class EventRecord(TypedDict):
    """Something the system or an observer reported: a stack exit or restart, a Docker event,
    eBPF counts, a flame graph. ``detect: true`` makes it a detection signal."""

    type: Literal["event"]
    t: float
    source: str
    kind: str


class LoadRecord(TypedDict):
    """The load generator's counters, once a second."""

    type: Literal["load"]
    t: float
    scheduled: int
    sent: int
    ok: int
    failed: int
    timeout: int
    unsent: int
    in_flight: int
    lag: float


class ObserverRecord(TypedDict):
    type: Literal["observer"]
    t: float
    action: Literal["skipped", "error"]
    observer: str
    reason: str


class ErrorRecord(TypedDict):
    """A failure that did not stop the run (copying stack events, the final read, a bug)."""

    type: Literal["error"]
    t: float
    what: NotRequired[str]
    error: NotRequired[str]
    traceback: NotRequired[str]


class EndRecord(TypedDict):
    """The runner's last word: its own failures (a fault it could not revert, a failed
    rollback). The outcome is not here: ``chaoslab.runner.verdict`` decides it from the whole journal."""

    type: Literal["end"]
    t: float
    errors: list[str]


Record = (RunRecord | PhaseRecord | FaultRecord | SampleRecord | RollbackRecord | StopRecord | AbortRecord
          | EventRecord | LoadRecord | ObserverRecord | ErrorRecord | EndRecord)
RecordType = Literal["run", "phase", "fault", "sample", "rollback", "stop", "abort", "event", "load",
                     "observer", "error", "end"]


def events(journal: list[Record], source: str | None = None) -> list[dict[str, Any]]:
    """The ``event`` records (of ``source``), as the open dicts they are."""
    return [cast(dict[str, Any], r) for r in journal
            if r["type"] == "event" and (source is None or r["source"] == source)]


def record(type_: RecordType, t: float, **fields: Any) -> Record:
    """A record from its parts (for writers whose fields come as keywords)."""
    return cast(Record, {"type": type_, "t": round(t, 6), **fields})


__all__ = [
    "AbortRecord", "EndRecord", "ErrorRecord", "EventRecord", "FaultAction", "FaultRecord", "LoadRecord",
    "ObserverRecord", "PhaseName", "PhaseRecord", "Record", "RecordType", "RollbackRecord", "RunRecord",
    "SampleRecord", "StopRecord", "events", "record",
]
