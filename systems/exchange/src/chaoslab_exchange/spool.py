"""The local write-ahead spool: where acknowledged orders wait while PostgreSQL is away.

One append-only JSON-lines file plus a small offset file saying how much of it is
already in PostgreSQL. An append returns only after fsync, so an ``accepted_queued``
acknowledgement survives a SIGKILL of the API. Replay is at-least-once from the offset;
PostgreSQL's unique keys make it exactly-once (a record replayed twice after a crash
between commit and offset write is ignored by ``ON CONFLICT DO NOTHING``).

Blocking file I/O on purpose: the writer (appends) and the replayer (reads, advances) call it
through asyncio.to_thread, so from two threads at once: one lock keeps an append from landing
between a replay's "everything is drained" and the truncation that follows it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

Record = dict[str, Any]


class Spool:
    DATA = "orders.spool"
    OFFSET = "orders.offset"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._data_path = directory / self.DATA
        self._offset_path = directory / self.OFFSET
        self._offset = 0
        self._size = 0
        self.depth = 0  # records appended but not yet confirmed in PostgreSQL
        self._lock = threading.Lock()

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._data_path.touch(exist_ok=True)
        self._repair_torn_tail()
        self._size = self._data_path.stat().st_size
        try:
            self._offset = int(self._offset_path.read_text() or "0")
        except FileNotFoundError:
            self._offset = 0
        if self._offset > self._size:  # crashed between truncating data and offset
            self._offset = 0
        self.depth = len(self.pending())

    def _repair_torn_tail(self) -> None:
        """Cut a half-written last line (never acknowledged: its fsync never returned),
        so the next append does not glue a good record onto it."""
        with self._data_path.open("rb+") as f:
            data = f.read()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())

    def append(self, records: list[Record]) -> None:
        payload = b"".join(
            json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records
        )
        with self._lock:
            with self._data_path.open("ab") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            self._size += len(payload)
            self.depth += len(records)

    def pending(self, limit: int | None = None) -> list[Record]:
        return self.read_pending(limit)[0]

    def read_pending(self, limit: int | None = None) -> tuple[list[Record], int]:
        """Records after the offset (oldest first) and the offset just past them."""
        with self._lock:
            return self._read_pending(limit)

    def _read_pending(self, limit: int | None) -> tuple[list[Record], int]:
        out: list[Record] = []
        pos = self._offset
        with self._data_path.open("rb") as f:
            f.seek(self._offset)
            for line in f:
                if not line.endswith(b"\n"):
                    break
                out.append(json.loads(line))
                pos += len(line)
                if limit is not None and len(out) >= limit:
                    break
        return out, pos

    def advance(self, offset: int, count: int) -> None:
        """Mark everything before ``offset`` as committed in PostgreSQL."""
        with self._lock:
            self._advance(offset, count)

    def _advance(self, offset: int, count: int) -> None:
        if offset >= self._size:
            # Fully drained: start a fresh file. Offset first so a crash in between
            # leaves offset > size, which open() reads as "start from 0" on an empty file.
            self._write_offset(offset)
            with self._data_path.open("rb+") as f:
                f.truncate(0)
                os.fsync(f.fileno())
            self._write_offset(0)
            self._offset = self._size = 0
            self.depth = 0
            return
        self._write_offset(offset)
        self._offset = offset
        self.depth = max(0, self.depth - count)

    def _write_offset(self, offset: int) -> None:
        tmp = self._offset_path.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.write(str(offset))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._offset_path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
