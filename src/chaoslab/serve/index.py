"""The SQLite index of runs: one row per run directory, so the Runs page filters and sorts
1,000 runs without opening 1,000 summaries.

The run directories stay the source of truth. A row remembers the size and mtime of the files
it was built from; ``refresh`` stats every directory (cheap) and re-reads only what changed: a
finished run's summary once, a running run's journal from the byte offset it had reached. A
missing database, or one of another schema version, is rebuilt from the directories.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..journal import EXPERIMENT, JOURNAL, SUMMARY
from . import rundir

SCHEMA_VERSION = 3
#: Finished runs are looked at again (a re-rendered summary) at most this often.
FULL_SWEEP = 5.0
INDEX_FILE = ".chaoslab-console.sqlite"

_COLUMNS = {
    "run_id": "TEXT PRIMARY KEY",
    "title": "TEXT",
    "experiment": "TEXT",
    "platform": "TEXT",
    "started_at": "REAL",
    "duration": "REAL",
    "phase": "TEXT",
    "outcome": "TEXT",
    "reason": "TEXT",
    "detection": "REAL",
    "ttr": "REAL",
    "p99_fault": "REAL",
    "error_fault": "REAL",
    "lost": "REAL",
    "pid": "INTEGER",
    "journal_offset": "INTEGER",
    "journal_stamp": "TEXT",
    "summary_stamp": "TEXT",
    "path": "TEXT",
    "seq": "INTEGER",
}


@dataclass
class RunRow:
    run_id: str
    title: str
    experiment: str
    platform: str
    started_at: float | None
    duration: float | None
    phase: str
    outcome: str | None
    reason: str | None
    detection: float | None
    ttr: float | None
    p99_fault: float | None
    error_fault: float | None
    lost: float | None
    pid: int | None
    journal_offset: int
    journal_stamp: str
    summary_stamp: str
    path: str
    """Relative to the runs directory: the run id, or ``suite-.../<run id>`` for a suite's run."""
    seq: int = 0
    """The index's change counter when this row was last written: the Runs page's stream sends
    the rows changed since the ``seq`` it last saw (its ``Last-Event-ID``)."""

    @property
    def running(self) -> bool:
        return self.outcome is None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _COLUMNS
                if k not in ("journal_offset", "journal_stamp", "summary_stamp", "path", "seq")}


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


class RunIndex:
    def __init__(self, runs_dir: Path, db_path: Path | None = None) -> None:
        self.runs_dir = runs_dir
        path = db_path or runs_dir / INDEX_FILE
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error):
            # A runs directory we may not write to (someone else's): the index lives in memory.
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._last_full = -FULL_SWEEP
        self._last_refresh = -FULL_SWEEP
        self._ensure_schema()
        self.seq: int = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM runs").fetchone()[0]
        """Bumped by every row written or removed; rows remember theirs."""
        self.removed: dict[str, int] = {}
        """Run directories gone while this console ran, with the seq of their removal."""

    def _ensure_schema(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                self._db.execute("DROP TABLE IF EXISTS runs")
            cols = ", ".join(f"{k} {v}" for k, v in _COLUMNS.items())
            self._db.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
            self._db.execute("CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at)")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- keeping the index in step with the directories -------------------------------------
    def refresh(self, *, full: bool = False, min_interval: float = 0.0) -> None:
        """New and removed directories and running runs, at every call; every finished run's
        files too (a summary re-rendered by ``chaoslab report``) at most every FULL_SWEEP seconds,
        so a page over 1,000 finished runs costs one directory listing, not 2,000 stats.
        ``min_interval``: skip when refreshed more recently (several live pages share one)."""
        with self._lock:
            now = time.monotonic()
            if not full and now - self._last_refresh < min_interval:
                return
            self._last_refresh = now
            known = {r[0]: (r[1], r[2]) for r in self._db.execute(
                "SELECT run_id, journal_stamp, summary_stamp FROM runs")}
            full = full or now - self._last_full >= FULL_SWEEP
            if full:
                self._last_full = now
            paths = self._names()
            names = [p.rsplit("/", 1)[-1] for p in paths]
            self._db.execute("BEGIN")
            try:
                for rel, name in zip(paths, names, strict=True):
                    old = known.get(name)
                    if old is not None and old[1] and not full:
                        continue  # finished, and not a full sweep
                    d = self.runs_dir / rel
                    stamps = (_stamp(d / JOURNAL), _stamp(d / SUMMARY))
                    if not stamps[0] or old == stamps:
                        continue  # not a run directory (no journal), or unchanged
                    row = self._row(d, stamps, rel)
                    if row is not None:
                        self._put(row)
                gone = set(known) - set(names)
                self._db.executemany("DELETE FROM runs WHERE run_id=?", [(g,) for g in gone])
                for g in gone:
                    self.seq += 1
                    self.removed[g] = self.seq
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _names(self) -> list[str]:
        """Run directories relative to the runs directory: its own, and a suite's
        (``chaoslab suite run`` writes ``suite-<id>/<run id>/``)."""
        out: list[str] = []
        for name in self._listing(self.runs_dir):
            out.append(name)
            if name.startswith("suite-"):
                out += [f"{name}/{sub}" for sub in self._listing(self.runs_dir / name)]
        return out

    @staticmethod
    def _listing(d: Path) -> list[str]:
        try:
            with os.scandir(d) as it:
                # d_type from the listing: no stat per entry
                return [e.name for e in it if not e.name.startswith(".") and e.is_dir()]
        except OSError:
            return []

    def _row(self, d: Path, stamps: tuple[str, str], rel: str) -> RunRow | None:
        old = self.get(d.name, lock=False)
        exp = rundir.read_json(d / EXPERIMENT) or {}
        model = exp.get("experiment") or {}
        summary = rundir.read_json(d / SUMMARY) if stamps[1] else None
        # A running run's journal is read on from where the last refresh stopped.
        state = rundir.JournalState()
        if old is not None and old.summary_stamp == "" and old.journal_offset:
            state = rundir.JournalState(offset=old.journal_offset, phase=old.phase,
                                        last_t=old.duration or 0.0, started_at=old.started_at, pid=old.pid)
        if summary is None:
            state.read_on(d / JOURNAL)
        elif state.started_at is None:
            state.started_at = summary.get("started_at")
        figures = rundir.figures(summary) if summary else {}
        phases = ((summary or {}).get("analysis") or {}).get("phases") or {}
        duration = phases.get("t_end") if summary else state.last_t
        return RunRow(
            run_id=d.name,
            title=str(model.get("title") or (summary or {}).get("title") or d.name),
            experiment=str(exp.get("path") or ""),
            platform=rundir.platform_of(model),
            started_at=state.started_at if state.started_at is not None else (summary or {}).get("started_at"),
            duration=float(duration) if isinstance(duration, int | float) else state.last_t,
            phase="done" if summary else state.phase,
            outcome=str(summary.get("outcome")) if summary else None,
            reason=str(summary.get("reason")) if summary and summary.get("reason") else None,
            pid=state.pid,
            journal_offset=state.offset,
            journal_stamp=stamps[0],
            summary_stamp=stamps[1],
            path=rel,
            detection=figures.get("detection"), ttr=figures.get("ttr"), p99_fault=figures.get("p99_fault"),
            error_fault=figures.get("error_fault"), lost=figures.get("lost"),
        )

    def _put(self, row: RunRow) -> None:
        self.seq += 1
        row.seq = self.seq
        self.removed.pop(row.run_id, None)
        names = list(_COLUMNS)
        self._db.execute(
            f"INSERT OR REPLACE INTO runs ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            [getattr(row, n) for n in names],
        )

    # -- queries ----------------------------------------------------------------------------
    def get(self, run_id: str, *, lock: bool = True) -> RunRow | None:
        def q() -> RunRow | None:
            cur = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE run_id=?", (run_id,))
            r = cur.fetchone()
            return RunRow(*r) if r else None

        if not lock:
            return q()
        with self._lock:
            return q()

    def runs(self, *, title: str | None = None, outcome: str | None = None, text: str | None = None,
             limit: int = 500, offset: int = 0, since: int | None = None) -> list[RunRow]:
        """Newest first. ``outcome`` "running" selects runs without a summary yet; ``since``,
        only the rows written after that ``seq``."""
        where: list[str] = []
        args: list[str | int] = []
        if since is not None:
            where.append("seq > ?")
            args.append(since)
        if title:
            where.append("title = ?")
            args.append(title)
        if outcome == "running":
            where.append("outcome IS NULL")
        elif outcome:
            where.append("outcome = ?")
            args.append(outcome)
        if text:
            where.append("(run_id LIKE ? OR title LIKE ? OR experiment LIKE ? OR reason LIKE ?)")
            args += [f"%{text}%"] * 4
        sql = f"SELECT {', '.join(_COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, run_id DESC LIMIT ? OFFSET ?"
        args += [limit, offset]
        with self._lock:
            return [RunRow(*r) for r in self._db.execute(sql, args)]

    def changed(self, since: int) -> list[str]:
        """Every run written or removed after ``since``, whatever the filters."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT run_id FROM runs WHERE seq > ?", (since,))]
        return ids + [g for g, seq in self.removed.items() if seq > since]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def titles(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT title FROM runs ORDER BY title")]

    def close(self) -> None:
        self._db.close()
