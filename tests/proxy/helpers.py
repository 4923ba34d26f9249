"""Real servers for the proxy tests: the proxy as a child process, and threaded TCP upstreams."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

PY = sys.executable


class ProxyProcess:
    """``python -m chaoslab.proxy serve --port 0`` as a child; the port is read from its first line."""

    def __init__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [PY, "-m", "chaoslab.proxy", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"proxy did not start: {line!r} {err!r}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def create(self, name: str, upstream: int, **extra: Any) -> tuple[str, int]:
        r = self.http.post(
            "/proxies",
            json={
                "name": name,
                "upstream": f"127.0.0.1:{upstream}",
                "listen": "127.0.0.1:0",
                **extra,
            },
        )
        assert r.status_code == 201, r.text
        host, port = r.json()["listen"].rsplit(":", 1)
        return host, int(port)

    def toxic(
        self, proxy: str, type: str, stream: str = "downstream", **attrs: Any
    ) -> dict[str, Any]:
        r = self.http.post(
            f"/proxies/{proxy}/toxics", json={"type": type, "stream": stream, "attributes": attrs}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())


class TcpServer:
    """A threaded TCP server on 127.0.0.1:0 running ``handler(conn)`` per connection."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(2048)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self._stop = False
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def echo(conn: socket.socket) -> None:
    while True:
        data = conn.recv(1 << 16)
        if not data:
            return
        conn.sendall(data)


def recv_all(sock: socket.socket, limit: float = 30.0) -> bytes:
    sock.settimeout(limit)
    out = bytearray()
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return bytes(out)
        out += data


def roundtrip(host: str, port: int, payload: bytes) -> bytes:
    """Send ``payload`` through an echo link, half-close, and read everything back."""
    with socket.create_connection((host, port), timeout=30) as s:
        t = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        t.start()
        data = recv_all(s)
        t.join()
    return data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rand(n: int) -> bytes:
    return os.urandom(n)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def free_port_url() -> str:
    """The URL of a loopback port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
