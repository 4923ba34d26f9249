"""Real PostgreSQL, Redis and trading-API processes for the exchange tests.

A plain module (not conftest) so test modules can import the classes by name.

Each server runs in its own session (process group) so a test can SIGKILL the whole
of it, as a crash would, and start it again on the same data and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from tests.conftest import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REPO = Path(__file__).resolve().parents[2]
#: The exchange's processes run this checkout's copy (systems/exchange), whatever the venv's
#: editable install of chaoslab-exchange points at, as examples/exchange/stack.yaml does.
EXCHANGE_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO / "systems" / "exchange" / "src"), os.environ.get("PYTHONPATH")])
    ),
}


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


class Proc:
    """A child process in its own process group, killed as a group."""

    proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], log: Path, **kw: object) -> None:
        with log.open("ab") as out:
            self.proc = subprocess.Popen(  # type: ignore[call-overload]
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group: the crash the experiments inject."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        _wait_group_gone(pgid)
        self.proc = None

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        self.kill() if rc is None else _wait_group_gone(self.proc.pid)
        self.proc = None
        return rc


class PgServer(Proc):
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="chaoslab-exchange-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = free_port()
        shutil.chown(self.base, "postgres", "postgres")
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            user="postgres",
            group="postgres",
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._spawn(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.base),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=on",
                "-c",
                "max_connections=60",
                "-c",
                "shared_buffers=64MB",
            ],
            self.log,
            user="postgres",
            group="postgres",
            cwd=str(self.base),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (
                subprocess.run(
                    [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                    capture_output=True,
                ).returncode
                == 0
            ):
                return
            if not self.alive:
                raise RuntimeError(f"postgres exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError("postgres did not become ready")

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self) -> str:
        name = f"chaoslab_ex_{uuid.uuid4().hex[:10]}"

        async def create() -> None:
            conn = await asyncpg.connect(self.dsn())
            try:
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        asyncio.run(create())
        return name

    def query(self, db: str, sql: str) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.dsn(db))
            try:
                return list(await conn.fetch(sql))
            finally:
                await conn.close()

        return asyncio.run(run())

    def cleanup(self) -> None:
        self.terminate(signal.SIGINT)
        shutil.rmtree(self.base, ignore_errors=True)


class RedisServer(Proc):
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()

    def start(self) -> None:
        self._spawn(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.base),
            ],
            self.base / "redis.log",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class ApiServer(Proc):
    def __init__(self, base: Path, pg_dsn: str, redis_url: str, *extra: str) -> None:
        self.base = base
        self.port = free_port()
        self.spool = base / "spool"
        self.argv = [
            sys.executable,
            "-m",
            "chaoslab_exchange.api",
            "--port",
            str(self.port),
            "--pg-dsn",
            pg_dsn,
            "--redis-url",
            redis_url,
            "--spool-dir",
            str(self.spool),
            "--startup-timeout",
            "2",
            "--breaker-reset",
            "0.5",
            *extra,
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self._spawn(self.argv, self.base / "api.log", cwd=str(REPO), env=EXCHANGE_ENV)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"API exited: {(self.base / 'api.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("API did not start")

    def log_tail(self, chars: int = 2000) -> str:
        return (self.base / "api.log").read_text(errors="replace")[-chars:]

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/health", timeout=2).json()
        return body


MakeApi = Callable[..., tuple[ApiServer, str]]
"""The ``api_factory`` fixture: start an API (extra CLI args) on a fresh database."""
