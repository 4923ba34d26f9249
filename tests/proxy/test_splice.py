"""The zero-copy path (``chaoslab/proxy/splice.py``): a direction without toxics is spliced in the
kernel, and switching to the userspace path and back, while bytes stream both ways, loses,
doubles and reorders nothing. Which path carried the bytes is read from ``/metrics``
(``chaoslab_proxy_spliced_bytes_total`` beside Toxiproxy's sent counter)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time

import pytest

from chaoslab.proxy import splice

from .helpers import ProxyProcess, TcpServer, rand, recv_all, sha

pytestmark = pytest.mark.skipif(not splice.AVAILABLE, reason="splice(2) is Linux-only")

# Toxics that hold, slice or pace the bytes but never change them (a checksum can judge them).
KEEPING = [
    ("latency", {"latency": 2, "jitter": 1}),
    ("slicer", {"average_size": 500, "size_variation": 200, "delay": 10}),
    ("bandwidth", {"rate": 100_000}),
    ("limit_data", {"bytes": 1 << 40}),
    ("slow_close", {"delay": 5}),
]


def counters(proxy: ProxyProcess, name: str) -> dict[tuple[str, str], float]:
    """(metric, direction) -> value for proxy ``name``."""
    out = {}
    for line in proxy.http.get("/metrics").text.splitlines():
        if line.startswith("#") or f'proxy="{name}"' not in line or "direction=" not in line:
            continue
        key, value = line.rsplit(" ", 1)
        direction = key.split('direction="', 1)[1].split('"', 1)[0]
        out[(key.split("{", 1)[0], direction)] = float(value)
    return out


def stream_through(port: int, stop: threading.Event, read_pause: float) -> tuple[int, bool]:
    """Streams random bytes through an echo link as fast as it may until ``stop``, and checks by
    SHA-256 that exactly those came back. With a ``read_pause`` the echo is read slowly: the
    proxy's writes into both sockets back up, so a switch finds bytes in the pipe (to hand on
    first) and in the transports' buffers (to wait for)."""
    sent, got = hashlib.sha256(), hashlib.sha256()
    n_sent = n_got = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:

        def send() -> None:
            nonlocal n_sent
            while not stop.is_set():
                data = os.urandom(1 << 16)
                sent.update(data)
                s.sendall(data)
                n_sent += len(data)
            s.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        while data := s.recv(1 << 14):
            got.update(data)
            n_got += len(data)
            if read_pause and not stop.is_set():
                time.sleep(read_pause)
        sender.join()
    return n_sent, n_sent == n_got and sent.digest() == got.digest()


async def toggle_while_streaming(proxy: ProxyProcess, port: int, toggles: int) -> list[tuple[int, bool]]:
    stop = threading.Event()
    streams = [asyncio.create_task(asyncio.to_thread(stream_through, port, stop, pause)) for pause in (0, 0, 0.0005, 0.0005)]
    try:
        for i in range(toggles):
            type_, attrs = KEEPING[i % len(KEEPING)]
            stream = ("downstream", "upstream")[(i // len(KEEPING)) % 2]
            await asyncio.to_thread(
                proxy.http.post, "/proxies/sw/toxics",
                json={"name": "t", "type": type_, "stream": stream, "attributes": attrs},
            )
            await asyncio.sleep(0.01)
            await asyncio.to_thread(proxy.http.delete, "/proxies/sw/toxics/t")
            await asyncio.sleep(0.01)
    finally:
        stop.set()
    return list(await asyncio.gather(*streams))


def test_switching_paths_while_streaming_keeps_every_byte(proxy_server: ProxyProcess, echo_server: TcpServer) -> None:
    _, port = proxy_server.create("sw", echo_server.port)
    # Each toggle: every live link switches one direction to userspace and back to splice.
    results = asyncio.run(toggle_while_streaming(proxy_server, port, toggles=100))
    assert all(ok for _, ok in results), [ok for _, ok in results]
    sent = sum(n for n, _ in results)
    assert sent > 4 * (1 << 16) * 20, sent
    c = counters(proxy_server, "sw")
    for d in ("upstream", "downstream"):
        total = c[("toxiproxy_proxy_sent_bytes_total", d)]
        spliced = c[("chaoslab_proxy_spliced_bytes_total", d)]
        assert total == sent, (d, total, sent)
        # Both paths really carried this direction's bytes.
        assert 0 < spliced < total, (d, spliced, total)
    assert proxy_server.alive()


def test_a_direction_without_toxics_is_spliced_and_one_with_toxics_is_not(proxy_server: ProxyProcess, echo_server: TcpServer) -> None:
    host, port = proxy_server.create("fast", echo_server.port)
    payload = rand(8 << 20)
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"hello")
        assert s.recv(5) == b"hello"
        before = counters(proxy_server, "fast")
        # Small messages stay on the transport path (no set-up for request/response traffic).
        assert before[("chaoslab_proxy_spliced_bytes_total", "upstream")] == 0
        proxy_server.toxic("fast", "latency", stream="downstream", latency=1)
        got = echo(s, payload)
    assert sha(got) == sha(payload)
    after = counters(proxy_server, "fast")
    spliced = {d: after[("chaoslab_proxy_spliced_bytes_total", d)] - before[("chaoslab_proxy_spliced_bytes_total", d)]
               for d in ("upstream", "downstream")}
    # A bulk flow is spliced from its first big read on; the reads before it went through the
    # transport.
    assert spliced["upstream"] > len(payload) * 0.75, spliced
    assert spliced["downstream"] == 0
    assert after[("toxiproxy_proxy_sent_bytes_total", "downstream")] == len(payload) + 5


def test_removing_the_last_toxic_returns_to_the_spliced_path(proxy_server: ProxyProcess, echo_server: TcpServer) -> None:
    host, port = proxy_server.create("back", echo_server.port)
    proxy_server.toxic("back", "latency", stream="downstream", latency=1)
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"x" * 1000)
        assert len(recv_all_n(s, 1000)) == 1000
        assert proxy_server.http.delete("/proxies/back/toxics/latency_downstream").status_code == 204
        mid = counters(proxy_server, "back")[("chaoslab_proxy_spliced_bytes_total", "downstream")]
        payload = rand(4 << 20)
        got = echo(s, payload)
    assert sha(got) == sha(payload)
    end = counters(proxy_server, "back")[("chaoslab_proxy_spliced_bytes_total", "downstream")]
    # The first reads after the removal go through the transport (the switch happens on a big
    # read whose write leaves the buffer empty); the bulk of the 4 MB is spliced.
    assert end - mid > len(payload) // 2, (mid, end)


def test_splice_off_keeps_every_byte_in_userspace(echo_server: TcpServer) -> None:
    proxy = ProxyProcess(env={**os.environ, "CHAOSLAB_PROXY_SPLICE": "0"})
    try:
        host, port = proxy.create("slow", echo_server.port)
        payload = rand(1 << 20)
        with socket.create_connection((host, port), timeout=30) as s:
            got = echo(s, payload)
        assert sha(got) == sha(payload)
        c = counters(proxy, "slow")
        assert c[("chaoslab_proxy_spliced_bytes_total", "upstream")] == 0
        assert c[("toxiproxy_proxy_sent_bytes_total", "upstream")] == len(payload)
    finally:
        proxy.stop()


def test_a_reset_on_a_spliced_link_closes_the_connection_and_its_descriptors(proxy_server: ProxyProcess) -> None:
    """A peer resetting a spliced socket: the proxy closes the link and keeps no descriptor."""
    def reset_after_a_read(conn: socket.socket) -> None:
        conn.recv(1 << 16)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

    server = TcpServer(reset_after_a_read)
    try:
        host, port = proxy_server.create("rst", server.port)
        fds_before = len(os.listdir(f"/proc/{proxy_server.pid}/fd"))
        for _ in range(20):
            with socket.create_connection((host, port), timeout=10) as s:
                s.sendall(b"x" * 100)
                try:
                    assert recv_all(s, 10) == b""
                except ConnectionResetError:
                    pass
        deadline = time.monotonic() + 10
        while len(os.listdir(f"/proc/{proxy_server.pid}/fd")) > fds_before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(os.listdir(f"/proc/{proxy_server.pid}/fd")) <= fds_before + 2
        assert proxy_server.alive()
    finally:
        server.close()


def echo(sock: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` (then end the stream) while reading everything the echo sends back."""
    sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
    sender.start()
    got = recv_all(sock)
    sender.join()
    return got


def recv_all_n(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            break
        out += data
    return bytes(out)


def test_limit_data_only_counts_so_a_bulk_flow_under_it_is_spliced_and_cut_at_the_exact_byte(
    proxy_server: ProxyProcess,
) -> None:
    received: list[int] = []

    def count(conn: socket.socket) -> None:
        n = 0
        try:
            while data := conn.recv(1 << 20):
                n += len(data)
        except ConnectionResetError:
            pass
        received.append(n)

    server = TcpServer(count)
    limit = 3_000_001
    try:
        host, port = proxy_server.create("cut", server.port)
        proxy_server.toxic("cut", "limit_data", stream="upstream", bytes=limit)
        with socket.create_connection((host, port), timeout=30) as s:
            try:
                for _ in range(128):
                    s.sendall(rand(1 << 16))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the proxy closed the link at the limit
            s.settimeout(30)
            try:
                assert s.recv(1) == b""  # and the client sees the close
            except ConnectionResetError:
                pass
        deadline = time.monotonic() + 15
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received == [limit]
        c = counters(proxy_server, "cut")
        assert c[("toxiproxy_proxy_sent_bytes_total", "upstream")] == limit
        assert c[("chaoslab_proxy_spliced_bytes_total", "upstream")] > limit // 2, c
    finally:
        server.close()
