"""``Analysis``: one run's analysis, typed, made of the parts its steps return (analyze.py).

``to_json()`` is the document written as analysis.json (and inside summary.json); its keys and
values are docs/metrics.md's ``analyze(run_dir)`` result. For code written against that
document, an ``Analysis`` also reads like it: ``a["metrics"]``, ``a.get("hypothesis")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .dataloss import DataLoss
from .detection import Detection
from .ebpf import EbpfView
from .figures import Figures
from .findings import findings as key_findings
from .hypothesis import Judgement
from .outcome import Verdict
from .phases import Phases
from .recovery import SteadyState
from .score import Score
from .validity import Validity


@dataclass(frozen=True)
class Analysis:
    run_dir: Path
    title: str | None
    description: str | None
    phases: Phases
    faults: list[dict[str, Any]]
    """Each injected fault's interval: {fault, target, describe, start, end}."""
    verdict: Verdict
    aborts: list[dict[str, Any]]
    """The journal's ``stop`` and ``abort`` records."""
    figures: Figures
    """Every metric (docs/metrics.md) and why each unmeasured one is missing."""
    detection: Detection
    steady: SteadyState
    data_loss: DataLoss
    poison: dict[str, Any] | None
    """The system's answer to malformed payloads (poison.py); None when the load sent none."""
    score: Score
    judgement: Judgement
    validity: Validity
    probes: dict[str, list[list[Any]]]
    """Each probe's samples as [t, ok, error]."""
    load: dict[str, Any] | None
    """The load generator's header record; None without load."""
    stack_events: list[dict[str, Any]]
    container_events: list[dict[str, Any]]
    kubernetes_events: list[dict[str, Any]]
    ebpf: EbpfView | None
    flamegraphs: list[dict[str, Any]]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.figures.values

    @property
    def missing(self) -> dict[str, str]:
        return self.figures.missing

    @property
    def outcome(self) -> str:
        return self.verdict.outcome

    @property
    def held(self) -> bool | None:
        return self.judgement.held

    @property
    def valid(self) -> bool:
        return self.validity.valid

    @property
    def impacted(self) -> bool:
        return self.steady.impacted

    @cached_property
    def findings(self) -> list[str]:
        """The key findings in plain words."""
        return key_findings(self)

    @property
    def verdict_word(self) -> str:
        """HELD, VIOLATED, INVALID or NOTHING TO JUDGE, as the reports show it."""
        if not self.valid and self.held is not False:
            return "INVALID"
        return "HELD" if self.held else "VIOLATED" if self.held is False else "NOTHING TO JUDGE"

    def to_json(self) -> dict[str, Any]:
        """The analysis.json document (docs/metrics.md), keys in the order it has always had."""
        doc: dict[str, Any] = {
            "run_dir": str(self.run_dir),
            "title": self.title,
            "description": self.description,
            "phases": self.phases.to_dict(),
            "faults": self.faults,
            "outcome": self.verdict.outcome,
            "aborts": self.aborts,
            "metrics": self.metrics,
            "missing": self.missing,
            "detected_by": self.detection.by,
            "steady_state": self.steady.to_dict(),
            "impacted": self.impacted,
            "data_loss": self.data_loss.to_dict(),
            "poison": self.poison,
            "score_parts": self.score.parts,
            "hypothesis": [a.to_dict() for a in self.judgement.assertions],
            "held": self.held,
            "valid": self.valid,
            "invalid_reason": self.validity.invalid_reason,
            "windows": [w.to_dict() for w in self.steady.windows],
            "probes": self.probes,
            "load": self.load,
            "stack_events": self.stack_events,
            "container_events": self.container_events,
        }
        if self.kubernetes_events:  # only then: the documents of runs without them stay as they were
            doc["kubernetes_events"] = self.kubernetes_events
        if self.ebpf is not None:
            doc["ebpf"] = self.ebpf.to_dict()
        doc["flamegraphs"] = self.flamegraphs
        doc["findings"] = self.findings
        return doc

    @cached_property
    def _document(self) -> dict[str, Any]:
        return self.to_json()

    def __getitem__(self, key: str) -> Any:
        return self._document[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._document.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._document
