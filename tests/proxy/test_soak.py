"""Short soak: 200 concurrent connections for 5 s while toxics are toggled every second.

The full 1,000 x 60 s version is ``bench/proxy.py --soak``.
"""

from __future__ import annotations

import asyncio
import time

from .helpers import ProxyProcess, TcpServer, fd_count, rss, wait_until
from .soak_client import checksummed_client

CONNECTIONS = 200
SECONDS = 5.0


async def soak(proxy: ProxyProcess, host: str, port: int) -> list[tuple[int, bool]]:
    stop_at = time.monotonic() + SECONDS
    clients = [
        asyncio.create_task(checksummed_client(host, port, stop_at)) for _ in range(CONNECTIONS)
    ]
    toxics = [
        ("latency", "downstream", {"latency": 30, "jitter": 10}),
        ("bandwidth", "upstream", {"rate": 20_000}),
        ("slicer", "downstream", {"average_size": 700, "size_variation": 200, "delay": 100}),
    ]
    i = 0
    while time.monotonic() < stop_at:
        type_, stream, attrs = toxics[i % len(toxics)]
        await asyncio.to_thread(
            proxy.http.post,
            "/proxies/soak/toxics",
            json={"type": type_, "stream": stream, "attributes": attrs},
        )
        await asyncio.sleep(0.5)
        await asyncio.to_thread(proxy.http.post, "/reset")
        await asyncio.sleep(0.5)
        i += 1
    return await asyncio.gather(*clients)


def test_soak_checksums_fds_rss(proxy_server: ProxyProcess, echo_server: TcpServer) -> None:
    host, port = proxy_server.create("soak", echo_server.port)
    fds_before = fd_count(proxy_server.pid)
    results = asyncio.run(soak(proxy_server, host, port))
    assert all(ok for _, ok in results), sum(1 for _, ok in results if not ok)
    assert sum(n for n, _ in results) > CONNECTIONS * 4096 * 10
    # Every connection closed: the proxy's descriptors come back to where they were.
    assert wait_until(lambda: fd_count(proxy_server.pid) <= fds_before + 2, 15), (
        fds_before,
        fd_count(proxy_server.pid),
    )
    rss_after_first = rss(proxy_server.pid)
    results = asyncio.run(soak(proxy_server, host, port))
    assert all(ok for _, ok in results)
    assert wait_until(lambda: fd_count(proxy_server.pid) <= fds_before + 2, 15)
    # A second identical round must not grow memory much (no per-connection leak).
    assert rss(proxy_server.pid) < rss_after_first * 1.3 + 8_000_000, (
        rss_after_first,
        rss(proxy_server.pid),
    )
    assert proxy_server.alive()
