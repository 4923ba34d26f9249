"""One health check attempt: http, tcp or command. Returns (ok, detail); never raises.

Standard library only: the supervisor runs these every second for its whole life and should
stay small; the checks only ever talk to loopback.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import urllib.parse

from .netns import inside
from .plan import HealthPlan


def check(h: HealthPlan, netns: str | None = None) -> tuple[bool, str]:
    """One attempt; inside ``netns`` (a test host's namespace) when given."""
    try:
        if h.type == "command":
            prefix = ["ip", "netns", "exec", netns] if netns else []
            return _command({"argv": prefix + list(h.target["argv"])}, h.timeout)
        with inside(netns):
            if h.type == "http":
                return _http(h.target, h.timeout)
            return _tcp(h.target, h.timeout)
    except Exception as exc:  # a check that blows up is a failed check, not a dead supervisor
        return False, f"{type(exc).__name__}: {exc}"


def _http(t: dict[str, object], timeout: float) -> tuple[bool, str]:
    url = urllib.parse.urlsplit(str(t["url"]))
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = cls(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    try:
        conn.request(str(t.get("method", "GET")), (url.path or "/") + (f"?{url.query}" if url.query else ""))
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return False, str(exc) or type(exc).__name__
    finally:
        conn.close()
    wanted = t.get("status") or [200]
    assert isinstance(wanted, list)
    return (status in wanted), f"HTTP {status}"


def _tcp(t: dict[str, object], timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((str(t["host"]), int(str(t["port"]))), timeout=timeout) as s:
            if not t.get("send"):
                return True, "connected"
            s.sendall(str(t["send"]).encode())
            reply = s.recv(256).decode(errors="replace")
    except OSError as exc:
        return False, exc.strerror or str(exc) or type(exc).__name__
    expect = str(t.get("expect") or "")
    if reply.startswith(expect):
        return True, reply.strip()[:60]
    return False, f"unexpected reply {reply.strip()[:60]!r}"


def _command(t: dict[str, object], timeout: float) -> tuple[bool, str]:
    argv = t["argv"]
    assert isinstance(argv, list)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:g}s"
    except OSError as exc:
        return False, str(exc)
    if proc.returncode == 0:
        return True, "exit 0"
    out = (proc.stderr or proc.stdout).strip().splitlines()
    return False, f"exit {proc.returncode}" + (f": {out[-1][:80]}" if out else "")
