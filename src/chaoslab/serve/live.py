"""Server-sent events that follow a run's journal as it grows.

Each event is one journal line, its id the byte offset just past that line. The stream reads
only what was appended since its last read (never the whole file again), and a browser that
lost the connection reconnects with ``Last-Event-ID`` and resumes at exactly that byte, so the
live view and a later replay show the same records. When the run's summary exists and the
journal is read to its end, an ``end`` event says so and the stream closes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from ..journal import JOURNAL, SUMMARY

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


async def follow(run_dir: Path, offset: int, *, poll: float = POLL) -> AsyncIterator[str]:
    """The SSE text of ``run_dir``'s journal from byte ``offset`` on."""
    journal = run_dir / JOURNAL
    yield "retry: 1000\n\n"
    quiet = 0.0
    fd = -1
    try:
        while True:
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
