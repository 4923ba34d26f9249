"""Behaviours pinned to Toxiproxy's own (issue 17, item 3), on real sockets and real bytes.
Each test failed on the proxy before the matching fix."""

from __future__ import annotations

import json
import socket
import time

from .helpers import ProxyProcess, TcpServer, echo, recv_all, wait_until

SLICED = bytes(range(256)) * 50  # 12,800 bytes: 128 slices of 100


def _slow_reads(host: str, port: int) -> tuple[int, float, bytes]:
    """Reads and the time from the first byte to the last."""
    with socket.create_connection((host, port), timeout=30) as s:
        s.settimeout(30)
        reads, out, first = 0, bytearray(), 0.0
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            if not out:
                first = time.perf_counter()
            reads += 1
            out += chunk
        return reads, time.perf_counter() - first, bytes(out)


def test_slicer_delay_is_in_microseconds(proxy_server: ProxyProcess) -> None:
    server = TcpServer(lambda c: c.sendall(SLICED))
    try:
        host, port = proxy_server.create("slices", server.port)
        proxy_server.toxic("slices", "slicer", average_size=100, size_variation=0, delay=300)
        reads, span, data = _slow_reads(host, port)
        assert data == SLICED
        # 127 gaps of 300 µs: at least 38 ms (a delay rounded down to 0 ms gives one or two reads)
        assert span >= 127 * 300e-6 * 0.9, span
        # slices arrive apart, not in one or two reads (a reader kept off the CPU beside stress-ng
        # takes several slices per read: 30 reads of 128 in one run; the span above is the proof)
        assert reads >= 8, reads
        proxy_server.http.post(
            "/proxies/slices/toxics/slicer_downstream", json={"attributes": {"delay": 2500}}
        ).raise_for_status()
        _, span, data = _slow_reads(host, port)
        assert data == SLICED
        # 2.5 ms, not 2 ms: 127 gaps take at least 0.95 * 317 ms
        assert span >= 127 * 2500e-6 * 0.95, span
    finally:
        server.close()


def test_removing_timeout_closes_the_connections_it_held(
    proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    host, port = proxy_server.create("hole", echo_server.port)
    proxy_server.toxic("hole", "timeout", timeout=0)  # a black hole that never closes by itself
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"anyone there?")
        s.settimeout(0.5)
        try:
            got = s.recv(100)
        except TimeoutError:
            got = None
        assert got is None, "a black hole passed data"
        proxy_server.http.delete("/proxies/hole/toxics/timeout_downstream").raise_for_status()
        s.settimeout(5)
        assert s.recv(100) == b"", "the held connection was not closed when its timeout toxic went"
    # a new connection is not held
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"ok")
        assert s.recv(10) == b"ok"


def test_timeout_restarts_on_every_chunk(
    proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    host, port = proxy_server.create("idle", echo_server.port)
    proxy_server.toxic("idle", "timeout", stream="upstream", timeout=800)
    with socket.create_connection((host, port), timeout=10) as s:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:  # steady traffic, well inside the timeout each time
            s.sendall(b".")
            time.sleep(0.1)
        s.settimeout(0.05)
        try:
            closed = s.recv(10) == b""
        except TimeoutError:
            closed = False
        assert not closed, "closed at the timeout although chunks kept arriving"
        t_quiet = time.monotonic()
        s.settimeout(10)
        assert s.recv(10) == b""
        quiet = time.monotonic() - t_quiet
        assert 0.5 < quiet < 5.0, quiet


def test_updating_limit_data_keeps_the_bytes_already_counted(
    proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    host, port = proxy_server.create("limit", echo_server.port)
    proxy_server.toxic("limit", "limit_data", bytes=1000)
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"a" * 600)
        got = b""
        while len(got) < 600:
            got += s.recv(1000)
        proxy_server.http.post(
            "/proxies/limit/toxics/limit_data_downstream", json={"attributes": {"bytes": 1100}}
        ).raise_for_status()
        s.sendall(b"b" * 600)
        rest = recv_all(s, limit=10)
    assert len(got) + len(rest) == 1100, (len(got), len(rest))


def test_populate_leaves_an_identical_disabled_proxy_disabled(
    proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    host, port = proxy_server.create("same", echo_server.port)
    proxy_server.http.post("/proxies/same", json={"enabled": False}).raise_for_status()
    body = [
        {"name": "same", "listen": f"{host}:{port}", "upstream": f"127.0.0.1:{echo_server.port}"}
    ]
    r = proxy_server.http.post("/populate", json=body)
    assert r.status_code == 201, r.text
    assert proxy_server.http.get("/proxies/same").json()["enabled"] is False
    with socket.socket() as s:
        assert s.connect_ex((host, port)) != 0, "the disabled proxy is listening again"


def test_small_toxiproxy_details(proxy_server: ProxyProcess) -> None:
    server = TcpServer(echo)
    try:
        r = proxy_server.http.post(
            "/proxies",
            json={"name": "lh", "listen": "localhost:0", "upstream": f"127.0.0.1:{server.port}"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["listen"].startswith("127.0.0.1:"), r.json()["listen"]
        r = proxy_server.http.post(
            "/proxies/lh/toxics",
            json={"type": "latency", "stream": "UpStream", "attributes": {"latency": 1}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["stream"] == "UpStream"
        assert r.json()["name"] == "latency_UpStream"
        assert '"toxicity":1,' in r.text.replace(" ", "") or '"toxicity":1}' in r.text.replace(
            " ", ""
        ), r.text
        assert wait_until(lambda: proxy_server.http.get("/proxies/lh/toxics").status_code == 200)
        # the toxic acts on the stream it names, whatever its case
        with socket.create_connection(
            (
                "127.0.0.1",
                int(
                    r.json()["name"]
                    and proxy_server.http.get("/proxies/lh").json()["listen"].rsplit(":", 1)[1]
                ),
            ),
            timeout=5,
        ) as s:
            s.sendall(b"x")
            assert s.recv(1) == b"x"
        bad = proxy_server.http.post("/populate", json=[{"name": "broken"}])
        assert bad.status_code == 400
        assert json.loads(bad.text)["proxies"] is None
    finally:
        server.close()


def _echo_time(s: socket.socket, payload: bytes) -> float:
    t0 = time.perf_counter()
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(1 << 16)
        assert chunk, "closed"
        got += chunk
    assert got == payload
    return time.perf_counter() - t0


def test_an_update_draws_toxicity_again_on_live_connections(
    proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    """Toxiproxy restarts a toxic on every live connection when it is updated, and the restart
    draws toxicity again (issue 24, item 5): 1 -> 0 takes the toxic off a connection that has it,
    0 -> 1 puts it on one that has not, and a state the toxic keeps per connection (limit_data's
    count) survives an off-and-on again, as Toxiproxy's stub does."""
    host, port = proxy_server.create("lat", echo_server.port)
    proxy_server.toxic("lat", "latency", latency=600)
    path = "/proxies/lat/toxics/latency_downstream"
    with socket.create_connection((host, port), timeout=30) as s:
        assert _echo_time(s, b"one") >= 0.6
        proxy_server.http.post(path, json={"toxicity": 0}).raise_for_status()
        fast = _echo_time(s, b"two")
        assert fast < 0.5, f"the toxic stayed on a live connection after toxicity 1 -> 0: {fast:.3f}s"
        proxy_server.http.post(path, json={"toxicity": 1}).raise_for_status()
        assert _echo_time(s, b"three") >= 0.6

    host, port = proxy_server.create("lim", echo_server.port)
    proxy_server.toxic("lim", "limit_data", bytes=1000)
    path = "/proxies/lim/toxics/limit_data_downstream"
    with socket.create_connection((host, port), timeout=10) as s:
        _echo_time(s, b"a" * 600)
        proxy_server.http.post(path, json={"toxicity": 0}).raise_for_status()
        _echo_time(s, b"b" * 600)  # not counted: the toxic is off on this connection
        proxy_server.http.post(path, json={"toxicity": 1}).raise_for_status()
        s.sendall(b"c" * 600)
        rest = recv_all(s, limit=10)
    assert len(rest) == 400, len(rest)  # 600 counted before, 400 more reach the 1000
