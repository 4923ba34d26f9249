"""A small open-model order load for the durability tests, run in a background thread.

On raw asyncio streams, keep-alive, at most ``connections`` requests out, each bounded as a
whole (connect, send, answer) by REQUEST_TIMEOUT; an order due while every connection is busy
is skipped and counted, never queued. Why not httpx: beside ``stress-ng --cpu 2`` its
AsyncClient stalled for good after the API was killed or slowed (3,560 requests pending in
``client.post`` well past their 5 s timeout, the API idle with nothing in flight), so a test
waiting for orders timed out with a healthy API: issue 25's "timed out waiting for orders in
the spool".
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from exchange_servers import ApiServer, PgServer

REQUEST_TIMEOUT = 6.0  # above the API's 3 s --order-deadline, as a client's 5 s would be
Conn = tuple[tuple[str, int], asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class LoadResult:
    acked: dict[str, str] = field(default_factory=dict)  # order_id -> durability
    attempted_client_ids: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    skipped: int = 0  # due while every connection was busy: never sent
    # trade_id -> (durability of the taker's acknowledgement, fill): what clients were told
    fills: dict[str, tuple[str, dict[str, object]]] = field(default_factory=dict)

    def durable(self, durability: str) -> int:
        return sum(1 for d in list(self.acked.values()) if d == durability)

    def __str__(self) -> str:
        return (f"{len(self.acked)} acknowledged, {len(self.fills)} fills, statuses {self.statuses},"
                f" {self.errors} errors, {self.skipped} skipped")


async def _exchange(conn: Conn, request: bytes) -> tuple[int, bytes]:
    _, reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return int(head.split(b" ", 2)[1]), await reader.readexactly(length)


class OrderLoad:
    """POSTs orders at ``rate``/s until stopped; records which ones were acknowledged."""

    def __init__(
        self, url_ref: list[str], rate: float = 150.0, prefix: str = "load", connections: int = 64
    ) -> None:
        self.url_ref = url_ref  # a one-item list so a test can point the load at a new port
        self.rate = rate
        self.prefix = prefix
        self.connections = connections
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> OrderLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        self._thread.join(30)
        return self.result

    def _order(self, n: int) -> dict[str, object]:
        rnd = random.Random(n)
        side = rnd.choice(["BUY", "SELL"])
        order: dict[str, object] = {
            "symbol": rnd.choice(["BTCUSD", "ETHUSD"]),
            "side": side,
            "quantity": rnd.randint(1, 5),
            "client_order_id": f"{self.prefix}-{n}",
        }
        if rnd.random() < 0.6:
            order |= {"type": "LIMIT", "price": rnd.randint(95, 105)}
        else:
            order["type"] = "MARKET"
        return order

    async def _one(self, idle: asyncio.Queue[Conn | None], n: int) -> None:
        if idle.empty():
            self.result.skipped += 1
            return
        conn = idle.get_nowait()
        url = urlsplit(self.url_ref[0])
        target = (url.hostname or "127.0.0.1", url.port or 80)
        order = self._order(n)
        body = json.dumps(order).encode()
        request = (
            f"POST /orders HTTP/1.1\r\nHost: {target[0]}:{target[1]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.result.attempted_client_ids.add(str(order["client_order_id"]))
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                if conn is not None and conn[0] != target:  # the test moved the API
                    conn[2].close()
                    conn = None
                if conn is None:
                    conn = (target, *await asyncio.open_connection(*target))
                status, payload = await _exchange(conn, request)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.result.errors += 1
            if conn is not None:
                conn[2].close()
            idle.put_nowait(None)  # the next order opens a fresh connection
            return
        idle.put_nowait(conn)
        self.result.statuses[status] = self.result.statuses.get(status, 0) + 1
        if status in (200, 201):
            answer = json.loads(payload)
            durability = answer.get("durability") or "retry"
            self.result.acked[answer["order_id"]] = durability
            for fill in answer.get("fills") or ():
                self.result.fills[fill["trade_id"]] = (durability, fill)

    async def _run(self) -> None:
        idle: asyncio.Queue[Conn | None] = asyncio.Queue()
        for _ in range(self.connections):
            idle.put_nowait(None)
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for n in itertools.count():
            if self._stop.is_set():
                break
            delay = t0 + n / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._one(idle, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
        while not idle.empty():
            conn = idle.get_nowait()
            if conn is not None:
                conn[2].close()


def wait_for(cond: object, timeout: float, what: str | Callable[[], str]) -> None:
    """Poll ``cond`` every 0.1 s; ``what`` (or what it returns, read at the timeout) says what
    was awaited and what was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what if isinstance(what, str) else what()}")


def check_no_loss(pg: PgServer, db: str, result: LoadResult, *earlier: LoadResult) -> None:
    rows = pg.query(db, "SELECT order_id, client_order_id FROM orders")
    stored = Counter(r["order_id"] for r in rows)
    assert result.acked, "the load got no acknowledgement at all"
    lost = set(result.acked) - set(stored)
    assert not lost, f"{len(lost)} acknowledged orders lost, e.g. {sorted(lost)[:3]}"
    assert all(n == 1 for n in stored.values())
    per_client_id = Counter(r["client_order_id"] for r in rows)
    assert all(n == 1 for n in per_client_id.values()), "a client_order_id stored twice"
    attempted = result.attempted_client_ids.union(*(e.attempted_client_ids for e in earlier))
    unexpected = set(per_client_id) - attempted
    assert not unexpected, f"orders nobody sent: {sorted(unexpected)[:3]}"


def spool_drained(api: ApiServer) -> bool:
    h = api.health()
    return bool(h["database"] == "up" and h["spool_depth"] == 0)
