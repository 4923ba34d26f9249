"""The fault ledger: what was injected and how to revert it, on disk *before* it is injected.

Layout, under ``state_dir()/ledger``::

    <run_id>/run.json      the runner: pid + start time (so a reused pid is not taken for it)
    <run_id>/0001.json     one entry per active fault: Fault.to_record() plus status

Every write is a new file fsynced then renamed over the old one, and the directory is fsynced,
so after a crash an entry is either the old or the new version, never torn. An entry is removed
only after its revert succeeded. ``chaoslab recover`` reverts the entries of runs whose runner is
dead, in reverse order of injection.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ChaoslabError, LedgerError
from ..faults import Fault
from ..faults.settings import fsync_dir
from ..faults.settings import state_dir as state_dir
from ..faults.settings import write_durably as write_durably
from ..targets import ProcessRef


def ledger_root() -> Path:
    return state_dir() / "ledger"


_fsync_dir = fsync_dir


class Ledger:
    """The ledger of one run. Not thread-safe for the same entry; entries are independent files."""

    def __init__(self, run_id: str, root: Path | None = None) -> None:
        self.run_id = run_id
        self.dir = (root or ledger_root()) / run_id
        self._seq = 0

    def open(self, meta: dict[str, Any]) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=False)
            me = ProcessRef.of(os.getpid())
            write_durably(
                self.dir / "run.json",
                {"run_id": self.run_id, "pid": me.pid, "create_time": me.create_time, "started": time.time(), **meta},
            )
        except OSError as exc:
            raise LedgerError(f"cannot write the fault ledger at {self.dir}: {exc.strerror or exc}") from None

    def record(self, fault: Fault[Any]) -> str:
        """Write the entry for ``fault`` before it is injected; returns its id."""
        self._seq += 1
        entry_id = f"{self._seq:04d}"
        fault._checkpoint = lambda f: self._write(entry_id, f, "injecting")
        self._write(entry_id, fault, "injecting")
        return entry_id

    def update(self, entry_id: str, fault: Fault[Any]) -> None:
        self._write(entry_id, fault, "active")

    def _write(self, entry_id: str, fault: Fault[Any], status: str) -> None:
        record = fault.to_record()
        record.update(entry=entry_id, status=status, written=time.time())
        try:
            write_durably(self.dir / f"{entry_id}.json", record)
        except OSError as exc:
            raise LedgerError(f"cannot write ledger entry {self.dir / entry_id}: {exc.strerror or exc}") from None

    def remove(self, entry_id: str) -> None:
        try:
            (self.dir / f"{entry_id}.json").unlink()
            _fsync_dir(self.dir)
        except FileNotFoundError:
            pass

    def entries(self) -> list[dict[str, Any]]:
        return RunLedger(self.dir).entries()

    def close(self) -> None:
        """Remove the run's directory if every entry was reverted; keep it otherwise."""
        if self.dir.is_dir() and not self.entries():
            shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class RunLedger:
    """A run's ledger as found on disk (maybe of a dead run)."""

    dir: Path
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self.meta = json.loads((self.dir / "run.json").read_text())
        except (OSError, json.JSONDecodeError):
            self.meta = {"run_id": self.dir.name}

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.dir.name))

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted(self.dir.glob("[0-9]*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
        return out

    def runner_alive(self) -> bool:
        pid, ct = self.meta.get("pid"), self.meta.get("create_time")
        if not pid or ct is None:
            return False
        return ProcessRef(int(pid), float(ct)).alive()


def runs(root: Path | None = None) -> list[RunLedger]:
    base = root or ledger_root()
    if not base.is_dir():
        return []
    return [RunLedger(d) for d in sorted(base.iterdir()) if d.is_dir()]


def dead_runs(root: Path | None = None) -> list[RunLedger]:
    """Runs whose runner is gone but whose ledger still holds entries."""
    return [r for r in runs(root) if not r.runner_alive() and r.entries()]


@dataclass
class Recovered:
    run_id: str
    fault: str
    describe: str
    error: str | None = None


def recover(root: Path | None = None, run_id: str | None = None) -> list[Recovered]:
    """Revert every entry left by dead runs (newest first); remove each after its revert succeeds."""
    from .. import faults

    results: list[Recovered] = []
    for run in runs(root):
        if run_id and run.run_id != run_id:
            continue
        if run.runner_alive():
            continue
        for rec in reversed(run.entries()):
            name = str(rec.get("fault"))
            try:
                fault = faults.get(name).from_record(rec)
                desc = fault.describe()
                fault.revert()
            except (ChaoslabError, KeyError, OSError, ValueError) as exc:
                results.append(Recovered(run.run_id, name, name, error=str(exc)))
                continue
            (run.dir / f"{rec['entry']}.json").unlink(missing_ok=True)
            results.append(Recovered(run.run_id, name, desc))
        if not run.entries():
            shutil.rmtree(run.dir, ignore_errors=True)
    return results


def refuse_dead_runs(ledger_root: Path | None, *, recover_first: bool | None = False,
                     say: Callable[[str], None] = print) -> None:
    """No run or session starts while a dead run's faults are unreverted, unless told to revert
    them first (``recover_first``; None: the caller has no such option to offer)."""
    dead = dead_runs(ledger_root)
    if not dead:
        return
    if not recover_first:
        names = ", ".join(r.run_id for r in dead)
        raise LedgerError(
            f"unreverted faults of a dead run are in the ledger ({names}); "
            + ("run `chaoslab recover` first" if recover_first is None else
               "run `chaoslab recover` (or pass --recover) first")
        )
    for r in recover(ledger_root):
        say(f"recovered {r.describe} of run {r.run_id}" + (f": FAILED {r.error}" if r.error else ""))
    if dead_runs(ledger_root):
        raise LedgerError("some faults of a dead run could not be reverted; see `chaoslab recover`")
