"""packet_loss, corrupt and /metrics (issue 17, item 2), measured on the bytes a real client
receives, with the toxics added by toxiproxy-python unmodified."""

from __future__ import annotations

import random
import socket
import time

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer

from .helpers import ProxyProcess, TcpServer, echo, recv_all

FRAME = 100
FRAMES = 600


@pytest.fixture
def toxi(proxy_server: ProxyProcess) -> Toxiproxy:
    APIConsumer.host, APIConsumer.port = "127.0.0.1", proxy_server.port
    return Toxiproxy()


def _paced_frames(conn: socket.socket) -> None:
    # A pause after each frame so that each one is read by the proxy as its own chunk.
    for i in range(FRAMES):
        conn.sendall(i.to_bytes(4, "big") * (FRAME // 4))
        time.sleep(0.002)


def _received(listen: str) -> bytes:
    host, port = listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        return recv_all(s, 60.0)


def _frames_lost(data: bytes) -> float:
    got = {int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data) - 3, FRAME)}
    assert len(data) % FRAME == 0, "a chunk was cut, not dropped whole"
    return 1 - len(got) / FRAMES


def test_packet_loss_drops_a_share_of_chunks_and_keeps_the_connection(toxi: Toxiproxy) -> None:
    server = TcpServer(_paced_frames)
    try:
        proxy = toxi.create(upstream=f"127.0.0.1:{server.port}", name="lossy", listen="127.0.0.1:0")
        proxy.add_toxic(type="packet_loss", name="loss", attributes={"loss_rate": 0.3})
        assert proxy.toxics()["loss"].attributes == {"loss_rate": 0.3, "correlation": 0.0}
        data = _received(proxy.listen)
        lost = _frames_lost(data)
        # 600 draws at 0.3: the standard deviation is 0.019; a frame merged into another chunk
        # by a busy machine is dropped or kept with it, which widens it a little.
        assert 0.18 <= lost <= 0.42, lost
        # The last frames still arrive: a gap in the stream, not a close.
        assert data, "nothing arrived"

        # Correlation: after a drop the rate is 0.2 + 0.6, so the long-run share is 0.2 / (1 - 0.6) = 0.5.
        proxy.destroy_toxic("loss")
        proxy.add_toxic(
            type="packet_loss", name="bursty", attributes={"loss_rate": 0.2, "correlation": 0.6}
        )
        lost = _frames_lost(_received(proxy.listen))
        assert 0.36 <= lost <= 0.64, lost

        proxy.destroy_toxic("bursty")
        assert _frames_lost(_received(proxy.listen)) == 0.0
    finally:
        server.close()


PAYLOAD = random.Random(7).randbytes(1_000_000)


def _corrupted(listen: str) -> bytes:
    host, port = listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        out = bytearray()
        view = memoryview(PAYLOAD)
        chunk = random.randint(1000, 9000)  # a different chunking on each connection
        for i in range(0, len(PAYLOAD), chunk):
            s.sendall(view[i : i + chunk])
            while len(out) < min(i + chunk, len(PAYLOAD)) - 65536:
                out += s.recv(1 << 16)
        s.shutdown(socket.SHUT_WR)
        out += recv_all(s, 60.0)
        return bytes(out)


def test_corrupt_flips_one_bit_in_a_share_of_bytes_repeatably(
    toxi: Toxiproxy, echo_server: TcpServer
) -> None:
    proxy = toxi.create(
        upstream=f"127.0.0.1:{echo_server.port}", name="noisy", listen="127.0.0.1:0"
    )
    proxy.add_toxic(
        type="corrupt", name="flip", stream="upstream", attributes={"probability": 0.01, "seed": 42}
    )
    first = _corrupted(proxy.listen)
    assert len(first) == len(PAYLOAD)
    diffs = [a ^ b for a, b in zip(first, PAYLOAD, strict=True) if a != b]
    # 10,000 expected of 1,000,000 (standard deviation 99)
    assert 9_500 <= len(diffs) <= 10_500, len(diffs)
    assert all(d & (d - 1) == 0 for d in diffs), "more than one bit flipped in a byte"
    second = _corrupted(proxy.listen)
    assert second == first, "same seed, different chunking: the same bytes must be hit"

    proxy.destroy_toxic("flip")
    proxy.add_toxic(
        type="corrupt", name="flip", stream="upstream", attributes={"probability": 0.01, "seed": 43}
    )
    assert _corrupted(proxy.listen) != first
    proxy.destroy_toxic("flip")
    assert _corrupted(proxy.listen) == PAYLOAD


def test_metrics_count_the_bytes_each_way(proxy_server: ProxyProcess) -> None:
    server = TcpServer(echo)
    try:
        host, port = proxy_server.create("counted", server.port)
        proxy_server.toxic("counted", "latency", stream="downstream", latency=1)
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"x" * 12345)
            s.shutdown(socket.SHUT_WR)
            assert len(recv_all(s)) == 12345
        r = proxy_server.http.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        lines = {
            ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1])
            for ln in r.text.splitlines()
            if ln and ln[0] != "#"
        }
        tail = f'listener="{host}:{port}",proxy="counted",upstream="127.0.0.1:{server.port}"'
        for d in ("upstream", "downstream"):
            assert lines[f'toxiproxy_proxy_received_bytes_total{{direction="{d}",{tail}}}'] == 12345
            assert lines[f'toxiproxy_proxy_sent_bytes_total{{direction="{d}",{tail}}}'] == 12345
        assert lines['chaoslab_proxy_connections_total{proxy="counted"}'] == 1
    finally:
        server.close()
