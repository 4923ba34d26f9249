"""The standalone exporter's view: every experiment's latest run in a runs directory, plus the
fault ledger (faults a dead run left injected), recomputed at each scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path
from typing import Protocol

import psutil
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .exporter import StateCollector
from .state import RunFollower, RunState


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class RunsDir:
    """Follows the run directories of ``root``; each is replayed once, then only its new lines."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._followers: dict[str, RunFollower] = {}

    def latest(self) -> list[RunState]:
        """The newest run of each experiment (run ids start with their start time)."""
        if not self.root.is_dir():
            return []
        by_title: dict[str, RunState] = {}
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and (p / "journal.jsonl").exists()):
            follower = self._followers.get(d.name)
            if follower is None:
                follower = self._followers[d.name] = RunFollower(d)
            state = follower.update()
            if state.active and not _alive(state.pid):
                state.active = False  # the runner died without a summary
                state.verdict = state.verdict or "crashed"
            by_title[state.experiment or d.name] = state
        return list(by_title.values())


class DeadRun(Protocol):
    @property
    def run_id(self) -> str: ...

    def entries(self) -> Sized: ...


class LedgerCollector(Collector):
    """``chaoslab_ledger_unreverted_faults``: faults of dead runs still waiting for ``chaoslab recover``.

    ``dead_runs`` reads the fault ledger (``runner.ledger.dead_runs``): handed in by the command
    that serves the metrics, so watching never imports the runner it watches."""

    def __init__(self, dead_runs: Callable[[Path | None], Iterable[DeadRun]], ledger_root: Path | None = None) -> None:
        self.dead_runs = dead_runs
        self.ledger_root = ledger_root

    def collect(self) -> Iterator[Metric]:
        g = GaugeMetricFamily("chaoslab_ledger_unreverted_faults",
                              "Faults a dead run left injected (run `chaoslab recover`).", labels=["run_id"])
        for run in self.dead_runs(self.ledger_root):
            g.add_metric([run.run_id], float(len(run.entries())))
        yield g


def runs_collectors(root: Path, dead_runs: Callable[[Path | None], Iterable[DeadRun]],
                    ledger_root: Path | None = None) -> list[Collector]:
    return [StateCollector(RunsDir(root).latest), LedgerCollector(dead_runs, ledger_root)]
