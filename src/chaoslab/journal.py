"""The run journal: everything a run observed, written as it happens, read by analysis and reports.

A run directory holds:

``experiment.json``  the validated experiment (and where it came from)
``journal.jsonl``    one JSON object per line, each with ``type`` and ``t`` (seconds on the run's
                     monotonic clock, 0 = the journal's start): the record types of
                     ``chaoslab.records`` (run, phase, fault, sample, rollback, stop, abort, event,
                     load, observer, error, end)
``history.jsonl``    the load generator's operations (see ``chaoslab.load``)
``verify.json``      the final read (``verify:``) of what the system holds after recovery
``summary.json``     written by ``chaoslab.runner.verdict`` at the end: outcome, exit code, the analysis

Lines are flushed to the kernel as they are written (a SIGKILL loses nothing already written) and
the file is only appended to, so a crashed run leaves a readable partial journal.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from .records import Record

JOURNAL = "journal.jsonl"
HISTORY = "history.jsonl"
SUMMARY = "summary.json"
EXPERIMENT = "experiment.json"
VERIFY = "verify.json"


class RunClock:
    """The run's single monotonic timeline (not a process clock: see system/faketime.py; nor the
    clock faults: faults/clock.py)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.wall0 = time.time()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def at(self, monotonic: float) -> float:
        return monotonic - self.t0


class JsonLines:
    """Append-only JSON-lines file, safe to write from several threads."""

    def __init__(self, path: Path, *, flush_every: float = 0.0) -> None:
        self.path = path
        self._f: IO[str] = open(  # noqa: SIM115 - kept open for the whole run, closed by close()
            path, "a", encoding="utf-8", buffering=1 if flush_every == 0 else 1 << 16
        )
        self._lock = threading.Lock()
        self._flush_every = flush_every
        self._last_flush = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            if self._f.closed:
                return
            self._f.write(line + "\n")
            if self._flush_every:
                now = time.monotonic()
                if now - self._last_flush >= self._flush_every:
                    self._f.flush()
                    self._last_flush = now

    def flush(self) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.flush()

    def close(self) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.flush()
                self._f.close()


class Journal:
    def __init__(self, run_dir: Path, clock: RunClock | None = None) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock or RunClock()
        self._lines = JsonLines(run_dir / JOURNAL)

    def write(self, type_: str, *, t: float | None = None, **fields: Any) -> None:
        record = {"type": type_, "t": round(self.clock.now() if t is None else t, 6)}
        record.update(fields)
        self._lines.write(record)

    def append(self, rec: Record) -> None:
        self._lines.write(dict(rec))

    def write_json(self, name: str, data: Any) -> None:
        write_json(self.run_dir, name, data)

    def close(self) -> None:
        self._lines.close()


def write_id(op: dict[str, Any]) -> str:
    """The id a write of ``history.jsonl`` is known by: the one the system acknowledged, else the
    key it was sent with (the final read and the data-loss check compare these)."""
    return str(op["ack_id"]) if op.get("ack_id") is not None else str(op.get("key", op.get("id")))


def write_json(run_dir: Path, name: str, data: Any) -> None:
    """Replace ``run_dir/name`` whole (a reader never sees half a file)."""
    tmp = run_dir / (name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(run_dir / name)


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file; a torn last line (crash mid-write) is skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def read_journal(run_dir: Path) -> list[Record]:
    # trusted as written: the runner and the session write only records of these types
    return cast(list[Record], list(read_lines(run_dir / JOURNAL)))


class Tail:
    """Reads the JSON-lines records appended to a file since the last call; a line still being
    written waits for its newline, a torn line of a crashed writer is skipped (as the analysis
    skips it). Followers of a live run use it: the observers, the runner's evidence, the console."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:  # not written yet
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        out = []
        for line in data[: end + 1].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out
