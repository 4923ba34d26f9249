"""Server-sent events that follow a run's journal as it grows.

Each event is one journal line, its id the byte offset just past that line. The stream reads
only what was appended since its last read (never the whole file again), and a browser that
lost the connection reconnects with ``Last-Event-ID`` and resumes at exactly that byte, so the
live view and a later replay show the same records. When the run's summary exists and the
journal is read to its end, an ``end`` event says so and the stream closes.

Beside the journal, the stream tails the load generator's ``history.jsonl`` (flushed every
0.5 s) the same way and sends ``latency`` events: p50/p99 of the successful operations per 1 s
window keyed by due time (docs/metrics.md), for the windows that changed. They carry no id, so
``Last-Event-ID`` stays the journal's offset; a reconnecting stream reads the history from its
start again (a window's percentiles need all of its operations), and the browser replaces each
window by its key, so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import AsyncIterator
from pathlib import Path

from ..journal import HISTORY, JOURNAL, SUMMARY

#: How often a quiet journal is looked at again: the runner writes several records a second,
#: and a stat() every 50 ms costs nothing next to the 0.5 s the issue allows a record.
POLL = 0.05
#: A comment line this often keeps proxies and the browser from timing the stream out.
KEEPALIVE = 15.0
#: At most this many bytes go into one read, so a replay of a long run streams in pieces.
CHUNK = 1 << 20


def parse_offset(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank."""
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))]


class LatencyWindows:
    """The history's successful operations, by 1 s window of their due time, read on from an offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.windows: dict[int, list[float]] = {}

    def read_on(self) -> dict[int, dict[str, float]]:
        """The windows that changed since the last read, as {window: {p50, p99, n}}."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return {}
        try:
            data = os.pread(fd, CHUNK, self.offset)
        finally:
            os.close(fd)
        end = data.rfind(b"\n")
        if end < 0:
            return {}
        self.offset += end + 1
        changed: set[int] = set()
        for line in data[: end + 1].split(b"\n"):
            if b'"outcome":"ok"' not in line:
                continue  # the header, failures, timeouts: not in the latency of successes
            try:
                op = json.loads(line)
                w, latency = int(op["t_scheduled"]), float(op["latency"])
            except (ValueError, KeyError, TypeError):
                continue
            self.windows.setdefault(w, []).append(latency)
            changed.add(w)
        out = {}
        for w in changed:
            values = sorted(self.windows[w])
            out[w] = {"p50": _percentile(values, 50), "p99": _percentile(values, 99), "n": len(values)}
        return out


def _latency_event(changed: dict[int, dict[str, float]]) -> str:
    return "event: latency\ndata: " + json.dumps({str(w): v for w, v in sorted(changed.items())}) + "\n\n"


async def follow(run_dir: Path, offset: int, *, poll: float = POLL) -> AsyncIterator[str]:
    """The SSE text of ``run_dir``'s journal from byte ``offset`` on."""
    journal = run_dir / JOURNAL
    yield "retry: 1000\n\n"
    quiet = 0.0
    fd = -1
    history = LatencyWindows(run_dir / HISTORY)
    try:
        while True:
            changed = history.read_on()
            if changed:
                yield _latency_event(changed)
            if fd < 0:
                try:
                    fd = os.open(journal, os.O_RDONLY)
                except FileNotFoundError:
                    fd = -1
            data = os.pread(fd, CHUNK, offset) if fd >= 0 else b""
            end = data.rfind(b"\n")
            if end >= 0:
                quiet = 0.0
                out = []
                pos = offset
                for line in data[: end + 1].split(b"\n")[:-1]:
                    pos += len(line) + 1
                    text = line.decode("utf-8", "replace").strip()
                    if text:
                        out.append(f"id: {pos}\ndata: {text}\n\n")
                offset = pos
                yield "".join(out)
                continue
            # Nothing new: finished when the summary exists and this read saw the journal's end
            # (the runner closes the journal before the verdict step writes the summary).
            if (run_dir / SUMMARY).exists():
                size = os.fstat(fd).st_size if fd >= 0 else 0
                if offset >= size:
                    yield f"id: {offset}\nevent: end\ndata: {{}}\n\n"
                    return
            await asyncio.sleep(poll)
            quiet += poll
            if quiet >= KEEPALIVE:
                quiet = 0.0
                yield ": keepalive\n\n"
    finally:
        if fd >= 0:
            os.close(fd)
