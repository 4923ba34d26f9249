"""A client that streams random bytes through a link to an echo server and checks, by SHA-256,
that exactly the bytes it sent came back. Shared by the soak test and `bench/proxy.py --soak`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time


async def checksummed_client(
    host: str,
    port: int,
    stop_at: float,
    *,
    chunk: int = 4096,
    pause: float = 0.02,
    drain_timeout: float = 60,
) -> tuple[int, bool]:
    """(bytes sent, whether everything came back intact) after streaming until ``stop_at``."""
    reader, writer = await asyncio.open_connection(host, port)
    sent, got = hashlib.sha256(), hashlib.sha256()
    n_sent = n_got = 0

    async def receive() -> None:
        nonlocal n_got
        while data := await reader.read(1 << 16):
            got.update(data)
            n_got += len(data)

    task = asyncio.create_task(receive())
    while time.monotonic() < stop_at:
        data = os.urandom(chunk)
        sent.update(data)
        n_sent += len(data)
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(pause)
    writer.write_eof()
    await asyncio.wait_for(task, drain_timeout)
    writer.close()
    return n_sent, sent.digest() == got.digest() and n_sent == n_got
