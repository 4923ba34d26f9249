"""HTTP-aware toxics (issue 17, item 2) on real bytes: a threaded HTTP/1.1 server behind the
proxy, http.client and curl in front of it, toxics added through the Toxiproxy API by
toxiproxy-python. What is asserted is what the server received and what the clients saw."""

from __future__ import annotations

import http.client
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.proxy import Proxy

from chaoslab import faults
from chaoslab.targets import TargetSpec, resolve

from .helpers import ProxyProcess, recv_all


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = (
        True  # head and body are two writes: no delayed-ACK stall between them
    )
    seen: list[dict[str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"alpha-", b"beta-", b"gamma"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/trickle"):
            # 5 pieces 100 ms apart: one message read by the proxy as several chunks
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            for _ in range(5):
                self.wfile.write(b"t" * 1000)
                self.wfile.flush()
                time.sleep(0.1)
            return
        n = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/size/") else 2
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.send_header("X-Origin", "backend")
        self.end_headers()
        self.wfile.write(b"a" * n)


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    Handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def link(proxy_server: ProxyProcess, http_server: ThreadingHTTPServer) -> Proxy:
    APIConsumer.host, APIConsumer.port = "127.0.0.1", proxy_server.port
    port = http_server.server_address[1]
    return Toxiproxy().create(upstream=f"127.0.0.1:{port}", name="web", listen="127.0.0.1:0")


def _addr(link: Proxy) -> tuple[str, int]:
    host, port = link.listen.rsplit(":", 1)
    return host, int(port)


def _statuses(link: Proxy, n: int, per_conn: int = 50) -> list[int]:
    """``n`` GETs on kept-alive connections; every body is read to its end."""
    out: list[int] = []
    while len(out) < n:
        conn = http.client.HTTPConnection(*_addr(link), timeout=20)
        for _ in range(min(per_conn, n - len(out))):
            conn.request("GET", "/size/300")
            r = conn.getresponse()
            body = r.read()
            assert len(body) == int(r.headers["Content-Length"])
            out.append(r.status)
        conn.close()
    return out


def test_http_status_share_on_kept_alive_connections_repeats_with_a_seed(link: Proxy) -> None:
    link.add_toxic(
        type="http_status",
        name="fail",
        attributes={
            "code": 503,
            "share": 0.3,
            "seed": 11,
            "body": "down for chaos",
            "headers": {"Retry-After": "1"},
        },
    )
    first = _statuses(link, 600)
    share = first.count(503) / len(first)
    print(
        f"\nhttp_status share 0.3, seed 11: {first.count(503)} of {len(first)} responses were 503 ({share:.3f})"
    )
    # 600 draws at 0.3: standard deviation 0.019
    assert 0.24 <= share <= 0.36, share
    assert set(first) == {200, 503}
    assert len(Handler.seen) == 600, "every request still reached the server"
    # Same seed, a new toxic: the same responses are replaced.
    link.destroy_toxic("fail")
    link.add_toxic(
        type="http_status", name="fail", attributes={"code": 503, "share": 0.3, "seed": 11}
    )
    assert _statuses(link, 600, per_conn=600) == first

    link.destroy_toxic("fail")
    link.add_toxic(
        type="http_status",
        name="fail",
        attributes={"code": 429, "body": "slow down", "headers": {"Retry-After": "7"}},
    )
    out = subprocess.run(
        ["curl", "-s", "-i", f"http://{link.listen}/size/5"], capture_output=True, timeout=20
    )
    assert out.stdout.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"), out.stdout
    assert b"\r\nRetry-After: 7\r\n" in out.stdout and out.stdout.endswith(b"\r\n\r\nslow down")
    link.destroy_toxic("fail")
    assert _statuses(link, 50) == [200] * 50


def test_http_status_is_refused_on_the_request_stream(
    proxy_server: ProxyProcess, link: Proxy
) -> None:
    r = proxy_server.http.post(
        "/proxies/web/toxics", json={"type": "http_status", "stream": "upstream"}
    )
    assert r.status_code == 400 and "downstream" in r.json()["error"]


def _timed_gets(link: Proxy, n: int) -> list[float]:
    conn = http.client.HTTPConnection(*_addr(link), timeout=20)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", "/size/100")
        conn.getresponse().read()
        times.append(time.perf_counter() - t0)
    conn.close()
    return times


def test_http_latency_is_added_once_per_request(link: Proxy) -> None:
    base = statistics.median(_timed_gets(link, 40))
    link.add_toxic(type="http_latency", name="slow", stream="upstream", attributes={"latency": 40})
    p50 = statistics.median(_timed_gets(link, 100)) - base
    print(
        f"\nhttp_latency 40 ms: p50 added {p50 * 1000:.2f} ms (error {abs(p50 - 0.040) * 1000:.2f} ms)"
    )
    # 1-2 ms with the machine quiet; generous for a loaded one
    assert abs(p50 - 0.040) < 0.010, p50
    link.destroy_toxic("slow")

    # A response read as 5 chunks over 400 ms: late by the latency once (per byte it would be
    # late by it on the last chunk too: 400 + 300 ms).
    link.add_toxic(type="http_latency", name="slow", attributes={"latency": 300})
    conn = http.client.HTTPConnection(*_addr(link), timeout=20)
    t0 = time.perf_counter()
    conn.request("GET", "/trickle")
    r = conn.getresponse()
    first = time.perf_counter() - t0
    assert len(r.read()) == 5000
    total = time.perf_counter() - t0
    print(
        f"trickled response with http_latency 300 ms: first byte {first:.3f}s, whole {total:.3f}s"
    )
    assert first >= 0.3, first
    assert total < 0.6, total
    conn.close()


def _pipelined(link: Proxy, paths: list[str]) -> bytes:
    with socket.create_connection(_addr(link), timeout=20) as s:
        reqs = b"".join(
            b"GET %s HTTP/1.1\r\nHost: x\r\nX-Trace: abc\r\n\r\n" % p.encode() for p in paths
        )
        s.sendall(reqs + b"GET /size/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return recv_all(s, 20)


def test_http_header_dropped_and_rewritten_as_server_and_client_see_them(link: Proxy) -> None:
    link.add_toxic(
        type="http_header", name="notrace", stream="upstream", attributes={"header": "x-trace"}
    )
    link.add_toxic(
        type="http_header", name="origin", attributes={"header": "X-Origin", "value": "chaos"}
    )
    # Three pipelined requests in one write, one of them answered chunked: all come back in order.
    data = _pipelined(link, ["/size/3", "/chunked", "/size/4"])
    assert [h[":path"] for h in Handler.seen] == ["/size/3", "/chunked", "/size/4", "/size/1"]
    assert all("x-trace" not in h for h in Handler.seen)
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 4
    # rewritten where the server set it, added to the chunked response that had none
    assert data.count(b"X-Origin: chaos\r\n") == 4 and b"backend" not in data
    body = data.split(b"Transfer-Encoding: chunked\r\n", 1)[1].split(b"\r\n\r\n", 1)[1]
    assert body.startswith(b"6\r\nalpha-\r\n5\r\nbeta-\r\n5\r\ngamma\r\n0\r\n\r\n")

    out = subprocess.run(
        [
            "curl",
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "X-Trace: zz",
            f"http://{link.listen}/size/2",
        ],
        capture_output=True,
        timeout=20,
        text=True,
    )
    assert "X-Origin: chaos\n" in out.stdout  # text mode: \r\n read as \n
    assert "x-trace" not in Handler.seen[-1]
    link.destroy_toxic("notrace")
    link.destroy_toxic("origin")
    _pipelined(link, ["/size/3"])
    assert Handler.seen[-2]["x-trace"] == "abc"


def test_http_abort_truncates_the_body_the_client_reads(link: Proxy) -> None:
    link.add_toxic(type="http_abort", name="cut", attributes={"after": 1000})
    conn = http.client.HTTPConnection(*_addr(link), timeout=20)
    conn.request("GET", "/size/10000")
    r = conn.getresponse()
    assert r.status == 200
    with pytest.raises(http.client.IncompleteRead) as info:
        r.read()
    assert len(info.value.partial) == 1000
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            f"http://{link.listen}/size/10000",
        ],
        capture_output=True,
        timeout=20,
        text=True,
    )
    assert out.returncode == 18, out  # CURLE_PARTIAL_FILE: "transfer closed with bytes remaining"
    assert out.stdout == "1000"
    link.destroy_toxic("cut")
    assert _statuses(link, 20) == [200] * 20


def test_removing_a_toxic_mid_request_frees_the_connection(link: Proxy) -> None:
    link.add_toxic(
        type="http_latency", name="hold", stream="upstream", attributes={"latency": 30_000}
    )
    conn = http.client.HTTPConnection(*_addr(link), timeout=20)
    conn.request("GET", "/size/7")
    time.sleep(0.3)
    t0 = time.perf_counter()
    link.destroy_toxic("hold")
    r = conn.getresponse()
    assert r.read() == b"a" * 7
    assert time.perf_counter() - t0 < 2.0
    # Half a request head held in the parser when the toxic goes: the connection is closed
    # (the client sees an error, not a wedged socket), later connections are normal.
    link.add_toxic(type="http_header", name="h", stream="upstream", attributes={"header": "x"})
    with socket.create_connection(_addr(link), timeout=20) as s:
        s.sendall(b"GET /size/2 HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        link.destroy_toxic("h")
        assert recv_all(s, 5) == b""
    assert _statuses(link, 5) == [200] * 5


def test_non_http_bytes_pass_untouched(proxy_server: ProxyProcess, echo_server) -> None:  # type: ignore[no-untyped-def]
    host, port = proxy_server.create("raw", echo_server.port)
    proxy_server.toxic("raw", "http_header", stream="upstream", header="x")
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"\x00\x01binary, not HTTP\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b"\x00\x01binary, not HTTP\r\n\r\n"


def test_network_http_faults_take_user_units(proxy_server: ProxyProcess, link: Proxy) -> None:
    def inject(name: str, params: dict) -> dict:  # type: ignore[type-arg]
        cls = faults.get(name)
        assert cls is not None
        target = resolve("t", TargetSpec(proxy="web", api=proxy_server.url))
        fault = cls(cls.Params.model_validate(params), target, run_id="http-1")
        fault.inject()
        [toxic] = proxy_server.http.get("/proxies/web/toxics").json()
        fault.revert()
        assert proxy_server.http.get("/proxies/web/toxics").json() == []
        return dict(toxic)

    toxic = inject(
        "network.http_latency", {"latency": "1.5s", "jitter": "20ms", "stream": "upstream"}
    )
    assert toxic["attributes"] == {"latency": 1500, "jitter": 20, "seed": None}
    toxic = inject("network.http_abort", {"after": "2KB", "share": 0.5})
    assert toxic["attributes"] == {"after": 2000, "share": 0.5, "reset": False, "seed": None}
    toxic = inject("network.http_status", {"code": 502})
    assert toxic["attributes"]["code"] == 502 and toxic["stream"] == "downstream"
