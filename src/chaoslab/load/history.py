"""The history of operations the load generator performed (GUIDE §4), one JSON line each.

The first line is a header ``{"type": "load", ...}`` (rate, run token, max lag); every other
line is an operation::

    {id, key, t_scheduled, t_sent, t_done, outcome: ok|fail|timeout, status, latency,
     ack, ack_id?, refused?, error?, cut?, poison?}

``t_sent`` is null for an operation that could not be sent on time; ``latency`` is measured
from ``t_scheduled`` (the due time), never from ``t_sent``; ``refused`` marks a write the system
explicitly declined (so it must not appear in the final read); ``cut`` marks an operation still
in flight when the run ended (left out of rates, kept for data loss).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Operation:
    id: int
    key: str
    t_scheduled: float
    t_sent: float | None = None
    t_done: float | None = None
    outcome: str = "fail"
    status: int | None = None
    ack: bool = False
    ack_id: str | None = None
    refused: bool = False
    error: str | None = None
    cut: bool = False
    poison: str | None = None  # the defect this operation's payload carries (load.http.poison)

    @property
    def latency(self) -> float | None:
        if self.t_done is None or self.t_sent is None:
            return None
        return self.t_done - self.t_scheduled

    def to_record(self) -> dict[str, Any]:
        lat = self.latency
        rec: dict[str, Any] = {
            "id": self.id,
            "key": self.key,
            "t_scheduled": round(self.t_scheduled, 6),
            "t_sent": None if self.t_sent is None else round(self.t_sent, 6),
            "t_done": None if self.t_done is None else round(self.t_done, 6),
            "outcome": self.outcome,
            "status": self.status,
            "latency": None if lat is None else round(lat, 6),
            "ack": self.ack,
        }
        if self.ack_id is not None:
            rec["ack_id"] = self.ack_id
        if self.poison is not None:
            rec["poison"] = self.poison
        if self.refused:
            rec["refused"] = True
        if self.error:
            rec["error"] = self.error
        if self.cut:
            rec["cut"] = True
        return rec


def _num(v: float | None) -> str:
    return "null" if v is None else f"{v:.6f}"


class History:
    """Appends operations to the history file.

    Lines are formatted by hand (the fields are few and known) and kept in memory, written
    every 0.5 s: at thousands of operations a second, ``json.dumps`` of a dict per line was the
    generator's largest cost. Only the event loop's thread writes, so there is no lock.

    Several load workers (``load.workers``) append to the same file: it is opened with
    ``O_APPEND`` and every write is whole lines in one ``write(2)``, which Linux does not
    interleave with another process's on a regular file, so the history stays one file of
    whole lines (in completion order, as with one worker).
    """

    FLUSH_EVERY = 0.5
    #: Lines kept before a write even within FLUSH_EVERY (bounds memory at high rates).
    FLUSH_LINES = 4096

    def __init__(self, path: Path) -> None:
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._lines: list[str] = []
        self._last_flush = time.monotonic()

    def header(self, **fields: Any) -> None:
        self._lines.append(json.dumps({"type": "load", **fields}, separators=(",", ":")) + "\n")
        self.flush()

    def record(self, op: Operation) -> None:
        sent, done = op.t_sent, op.t_done
        extra = ""
        if op.ack_id is not None:
            extra += f',"ack_id":{json.dumps(op.ack_id)}'
        if op.refused:
            extra += ',"refused":true'
        elif op.outcome == "fail" and op.status is not None:
            # an indeterminate answer (502/504 by the ack rule): said explicitly, because a reader
            # that finds no "refused" takes any failure with a status for an explicit refusal
            extra += ',"refused":false'
        if op.error:
            extra += f',"error":{json.dumps(op.error)}'
        if op.cut:
            extra += ',"cut":true'
        if op.poison is not None:
            extra += f',"poison":{json.dumps(op.poison)}'
        if sent is not None and done is not None:
            times = f'"t_sent":{sent:.6f},"t_done":{done:.6f},'
            latency = f"{done - op.t_scheduled:.6f}"
        else:
            times = f'"t_sent":{_num(sent)},"t_done":{_num(done)},'
            latency = "null"
        lines = self._lines
        lines.append(
            f'{{"id":{op.id},"key":"{op.key}","t_scheduled":{op.t_scheduled:.6f},{times}'
            f'"outcome":"{op.outcome}","status":{"null" if op.status is None else op.status},'
            f'"latency":{latency},"ack":{"true" if op.ack else "false"}{extra}}}\n'
        )
        if len(lines) >= self.FLUSH_LINES:
            self.flush()
        else:
            now = time.monotonic()
            if now - self._last_flush >= self.FLUSH_EVERY:
                self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._lines or self._fd is None:
            return
        data = "".join(self._lines).encode()
        self._lines.clear()
        while data:  # a regular file takes it whole; a short write only on a full disk or a signal
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None
