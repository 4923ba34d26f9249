"""Key findings in plain words, like the seeds' experiment summaries."""

from __future__ import annotations

from typing import Any, Protocol

from ..experiment.names import format_value
from ..units import format_duration
from .containerevents import container_findings
from .cost import summary as cost_summary
from .dataloss import DataLoss
from .detection import Detection
from .ebpf import EbpfView
from .flamegraphs import flamegraph_findings
from .hypothesis import Judgement
from .kubeevents import kubernetes_findings
from .phases import Phases
from .poison import findings as poison_findings
from .recovery import SteadyState
from .stackevents import stack_findings
from .validity import Validity


class Parts(Protocol):
    """What the findings are told from: the parts of an ``Analysis`` (model.py)."""

    @property
    def phases(self) -> Phases: ...
    @property
    def validity(self) -> Validity: ...
    @property
    def judgement(self) -> Judgement: ...
    @property
    def aborts(self) -> list[dict[str, Any]]: ...
    @property
    def metrics(self) -> dict[str, Any]: ...
    @property
    def missing(self) -> dict[str, str]: ...
    @property
    def detection(self) -> Detection: ...
    @property
    def steady(self) -> SteadyState: ...
    @property
    def probes(self) -> dict[str, list[list[Any]]]: ...
    @property
    def stack_events(self) -> list[dict[str, Any]]: ...
    @property
    def container_events(self) -> list[dict[str, Any]]: ...
    @property
    def kubernetes_events(self) -> list[dict[str, Any]]: ...
    @property
    def ebpf(self) -> EbpfView | None: ...
    @property
    def flamegraphs(self) -> list[dict[str, Any]]: ...
    @property
    def data_loss(self) -> DataLoss: ...
    @property
    def poison(self) -> dict[str, Any] | None: ...


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f}%"


def _dur(v: float | None) -> str:
    return "n/a" if v is None else format_duration(v)


def findings(a: Parts) -> list[str]:
    out: list[str] = []
    valid, held = a.validity.valid, a.judgement.held
    if not valid and held is False:
        out.append(f"The load was not sent at its rate ({a.validity.invalid_reason}): rates, latencies and recovery "
                   "are unreliable, but the data checks that failed do not depend on the rate.")
    elif not valid:
        out.append(f"This run is INVALID: {a.validity.invalid_reason}.")
    if not a.phases.complete:
        out.append("The journal has no end record: the run crashed or was killed; figures cover what was recorded.")
    for rec in a.aborts:
        out.append(f"The run was stopped early: {rec.get('reason') or rec.get('condition')}.")
    t_inject = a.phases.t_inject
    out += _fault_findings(a) if t_inject is not None else [
        "No fault was injected, so there is no fault behaviour to judge."
    ]
    out += stack_findings(a.stack_events, t_inject)
    out += container_findings(a.container_events, t_inject)
    out += kubernetes_findings(a.kubernetes_events, t_inject)
    out += a.ebpf.findings if a.ebpf is not None else []
    out += flamegraph_findings(a.flamegraphs)
    loss = a.data_loss
    if loss.status == "checked":
        if loss.lost:
            out.append(f"{len(loss.lost)} acknowledged write(s) were LOST: {_ids(loss.lost)}.")
        else:
            out.append(f"No acknowledged write was lost ({loss.acknowledged} acknowledged, {loss.final} read back).")
        if loss.resurrected:
            out.append(f"{len(loss.resurrected)} write(s) reported as failed are present anyway: {_ids(loss.resurrected)}.")
        if loss.unexpected:
            out.append(f"{len(loss.unexpected)} write(s) present were never attempted: {_ids(loss.unexpected)}.")
        if loss.duplicates:
            out.append(f"{len(loss.duplicates)} write(s) are stored more than once: {_ids(loss.duplicates)}.")
        if loss.recovered_from_timeout:
            out.append(f"{len(loss.recovered_from_timeout)} write(s) that timed out were applied anyway (allowed).")
    elif loss.status == "unknown":
        out.append(f"Data loss is UNKNOWN: {loss.reason}.")
    out += poison_findings(a.poison)
    for v in a.judgement.assertions:
        if not v.passed:
            shown = v.note or format_value(v.name, v.value)
            out.append(f"Hypothesis violated: {v.name} = {shown}, expected {v.bound_text}.")
    if (watching := cost_summary(a.metrics)) is not None:
        out.append(watching)
    return out


def _fault_findings(a: Parts) -> list[str]:
    m = a.metrics
    miss = a.missing
    out: list[str] = []
    if m.get("detection_time") is not None:
        out.append(f"The system detected the fault after {_dur(m['detection_time'])} ({a.detection.by}).")
    else:
        out.append("The system never signalled the fault: no signal probe failed and no detect event was seen.")
    if not a.steady.impacted:
        out.append("The fault had no measurable impact: every window stayed within the baseline's steady state.")
    elif m.get("time_to_recovery") is not None:
        out.append(
            f"Impact began {_dur(m['impact_onset'])} after injection; the system recovered "
            f"{_dur(m['time_to_recovery'])} after the fault was reverted "
            f"({_dur(m['time_to_recovery.from_impact'])} after the impact began)"
            + (f"; to the operation, {_dur(m['time_to_recovery.exact'])} after the revert."
               if m.get("time_to_recovery.exact") is not None else ".")
        )
    else:
        out.append(f"The system did not recover: {miss.get('time_to_recovery', 'no recovery measured')}.")
    if m.get("availability.fault") is not None:
        out.append(
            f"Availability: {_pct(m.get('availability.baseline'))} in baseline, {_pct(m['availability.fault'])} "
            f"during the fault, {_pct(m.get('availability.recovery'))} in recovery "
            f"(timeouts {_pct(m.get('timeout_rate.fault'))} of fault-phase operations)."
        )
    for name in a.probes:
        fault = m.get(f"probe.{name}.availability.fault")
        if fault is not None and fault < 1.0:
            out.append(
                f"Probe {name} passed {_pct(fault)} of its samples during the fault "
                f"({_pct(m.get(f'probe.{name}.availability.baseline'))} in baseline, "
                f"{_pct(m.get(f'probe.{name}.availability.recovery'))} in recovery)."
            )
    if m.get("latency.p99.fault") is not None:
        out.append(
            f"p99 latency {_dur(m.get('latency.p99.baseline'))} in baseline, {_dur(m['latency.p99.fault'])} "
            f"during the fault (max {_dur(m.get('latency.max.fault'))})."
        )
    return out


def _ids(ids: list[str], limit: int = 10) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more
