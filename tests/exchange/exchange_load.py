"""A small open-model order load for the durability tests, run in a background thread."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from exchange_servers import ApiServer, PgServer


@dataclass
class LoadResult:
    acked: dict[str, str] = field(default_factory=dict)  # order_id -> durability
    attempted_client_ids: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    # trade_id -> (durability of the taker's acknowledgement, fill): what clients were told
    fills: dict[str, tuple[str, dict[str, object]]] = field(default_factory=dict)

    def __str__(self) -> str:
        return (f"{len(self.acked)} acknowledged, {len(self.fills)} fills, statuses {self.statuses},"
                f" {self.errors} errors")


class OrderLoad:
    """POSTs orders at ``rate``/s until stopped; records which ones were acknowledged."""

    def __init__(self, url_ref: list[str], rate: float = 150.0, prefix: str = "load") -> None:
        self.url_ref = url_ref  # a one-item list so a test can point the load at a new port
        self.rate = rate
        self.prefix = prefix
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

    async def _one(self, client: httpx.AsyncClient, n: int) -> None:
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
        self.result.attempted_client_ids.add(str(order["client_order_id"]))
        try:
            r = await client.post(f"{self.url_ref[0]}/orders", json=order)
        except httpx.HTTPError:
            self.result.errors += 1
            return
        self.result.statuses[r.status_code] = self.result.statuses.get(r.status_code, 0) + 1
        if r.status_code in (200, 201):
            body = r.json()
            self.result.acked[body["order_id"]] = body.get("durability") or "retry"
            for fill in body.get("fills") or ():
                self.result.fills[fill["trade_id"]] = (body.get("durability") or "retry", fill)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=5, limits=limits) as client:
            tasks: set[asyncio.Task[None]] = set()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for n in itertools.count():
                if self._stop.is_set():
                    break
                delay = t0 + n / self.rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._one(client, n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=15)


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
