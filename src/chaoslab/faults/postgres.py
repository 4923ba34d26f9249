"""``postgres.exhaust_connections``: hold idle connections until the server has no slot left.

A small holder process (``python -m chaoslab.faults.postgres``) opens connections until the
server answers "too many connections" (SQLSTATE 53300), optionally gives ``leave`` back, reports
how many it holds and sleeps; revert stops it, which closes them all. A separate process keeps
the connections out of the runner's event loop, and lets ``chaoslab recover`` release them after
the runner was killed (the holder is in the ledger like any hog).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

from pydantic import Field

from ..errors import FaultError
from ..system import capabilities
from ..units import Duration
from . import register
from ._hogs import comm_of, new_token, spawn, stop
from .base import Fault, FaultParams

MAX_PG_CONNECTIONS = 262_143
"""PostgreSQL's own ceiling on max_connections."""


class ExhaustParams(FaultParams):
    dsn: str = Field(description="postgresql://user@host:port/db of the server to exhaust.")
    leave: int = Field(0, ge=0, le=MAX_PG_CONNECTIONS, description="Slots to give back once full (0: none left).")
    max: int = Field(10_000, ge=1, le=MAX_PG_CONNECTIONS, description="Never hold more than this many connections.")
    timeout: Duration = Field(30.0, gt=0, description="How long filling the server may take.")


@register
class PostgresExhaustConnections(Fault[ExhaustParams]):
    name = "postgres.exhaust_connections"
    summary = "Hold idle connections until PostgreSQL reaches max_connections; released on revert."
    needs = None

    @classmethod
    def check(cls) -> None:
        capabilities.require("asyncpg")

    def inject(self) -> None:
        p = self.params
        argv = [sys.executable, "-m", "chaoslab.faults.postgres", p.dsn, str(p.leave), str(p.max)]
        token = new_token()
        self.state["hog"] = {"pending": True, "token": token, "comm": comm_of(argv)}
        self.checkpoint()
        self.state["hog"] = spawn(argv, stdout=subprocess.PIPE, token=token)
        self.checkpoint()
        from ._hogs import _children as hogs

        proc = hogs.get(int(self.state["hog"]["pid"]))
        assert proc is not None and proc.stdout is not None
        line = _read_line(proc, p.timeout)
        if not line.startswith("HELD "):
            stop(self.state["hog"])
            raise FaultError(f"{self.name}: {line or 'the connection holder did not report in time'}")
        self.state["held"] = int(line.split()[1])
        self.checkpoint()

    def revert(self) -> None:
        hog = self.state.get("hog")
        if hog and ("pid" in hog or "token" in hog):
            stop(hog)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline and not buf.endswith(b"\n"):
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        chunk = proc.stdout.read1(4096)  # type: ignore[attr-defined]
        if not chunk:
            break
        buf += chunk
    sel.close()
    return buf.decode(errors="replace").strip()


# --- the holder process ---------------------------------------------------------------------

async def _hold(dsn: str, leave: int, limit: int) -> None:
    import asyncpg

    conns: list[Any] = []
    while len(conns) < limit:
        try:
            conns.append(await asyncpg.connect(dsn, timeout=10))
        except asyncpg.TooManyConnectionsError:
            break
        except Exception as exc:  # anything else before the server is full is a failure
            if not conns:
                print(f"cannot connect to {dsn}: {exc}", flush=True)
                raise SystemExit(1) from None
            break
    for conn in conns[len(conns) - min(leave, len(conns)):]:
        await conn.close()
    held = len(conns) - min(leave, len(conns))
    print(f"HELD {held}", flush=True)
    while True:
        await asyncio.sleep(3600)


def main(argv: list[str]) -> None:
    dsn, leave, limit = argv[0], int(argv[1]), int(argv[2])
    asyncio.run(_hold(dsn, leave, limit))


if __name__ == "__main__":
    main(sys.argv[1:])
