"""Everything analysis needs, read from a run directory and nothing else (GUIDE §2).

A run is read once, into one ``RunData``, and every step of the analysis (and the verdict) is
given it: no step opens a file of the run directory again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..journal import EXPERIMENT, HISTORY, VERIFY, read_journal, read_lines
from ..records import Record, SampleRecord
from .phases import Phases, phases_from_journal


@dataclass
class Probe:
    name: str
    signal: bool = True
    every: float = 1.0


@dataclass
class RunData:
    run_dir: Path
    experiment: dict[str, Any]
    journal: list[Record]
    phases: Phases
    load_meta: dict[str, Any] | None  # the generator's header line; None when the run had no load
    ops: list[dict[str, Any]]
    verify: dict[str, Any] | None
    probes: dict[str, Probe] = field(default_factory=dict)

    @property
    def has_load(self) -> bool:
        return self.load_meta is not None or bool(self.ops) or bool(self.experiment.get("load"))

    @property
    def hypothesis(self) -> dict[str, dict[str, Any]]:
        return dict(self.experiment.get("hypothesis") or {})

    @property
    def wants_verify(self) -> bool:
        return bool(self.experiment.get("verify")) or self.verify is not None

    @cached_property
    def samples(self) -> list[SampleRecord]:
        """Probe samples of the run proper (not those taken during the final read)."""
        end = self.phases.t_end
        return [r for r in self.journal if r["type"] == "sample" and r["t"] <= end]

    @cached_property
    def _samples_by_probe(self) -> dict[str, list[SampleRecord]]:
        out: dict[str, list[SampleRecord]] = {}
        for s in self.samples:
            out.setdefault(s["probe"], []).append(s)
        return out

    def samples_of(self, probe: str) -> list[SampleRecord]:
        """One probe's samples of the run proper, in the journal's order."""
        return self._samples_by_probe.get(probe, [])

def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def load_run(run_dir: Path, journal: list[Record] | None = None) -> RunData:
    """Read a run directory, tolerating every file being absent or cut short by a crash.

    ``journal``: its records when the caller has read them already (the verdict reads the journal
    first, so that a run whose analysis fails still gets an outcome), so they are read once."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run directory")
    doc = _read_json(run_dir / EXPERIMENT) or {}
    experiment: dict[str, Any] = doc.get("experiment", doc) if isinstance(doc, dict) else {}
    if journal is None:
        journal = read_journal(run_dir)
    meta: dict[str, Any] | None = None
    ops: list[dict[str, Any]] = []
    for rec in read_lines(run_dir / HISTORY):
        if "type" in rec:
            if rec["type"] == "load" and meta is None:
                meta = rec
            continue
        if "t_scheduled" in rec:
            ops.append(rec)
    probes = {
        name: Probe(name, bool(spec.get("signal", True)), float(spec.get("every", 1.0)))
        for name, spec in (experiment.get("probes") or {}).items()
    }
    for r in journal:  # probes sampled but absent from the experiment (hand-written runs)
        if r["type"] == "sample" and r["probe"] not in probes:
            probes[r["probe"]] = Probe(r["probe"])
    verify = _read_json(run_dir / VERIFY)
    phases = phases_from_journal(journal)
    if phases.complete:  # operations scheduled after the end would have been cut
        ops = [op for op in ops if float(op["t_scheduled"]) <= phases.t_end]
    return RunData(
        run_dir=run_dir,
        experiment=experiment,
        journal=journal,
        phases=phases,
        load_meta=meta,
        ops=ops,
        verify=verify if isinstance(verify, dict) else None,
        probes=probes,
    )
