"""PostgreSQL persistence: the order log (immutable rows, unique on order_id and on
client_order_id) and the trades derived from it by the matching engine."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from chaoslab_exchange.breaker import CircuitBreaker
from chaoslab_exchange.resilience import abandon_after, call_dependency
from chaoslab_exchange.spool import Record

T = TypeVar("T")

# What a healthy PostgreSQL may take per row of a batch on top of --slow-call before the write
# counts as slow: a 2000-record spool replay took 0.18 s on the 2-core VM with its load average
# at 6.5 (0.09 ms a row); 0.5 ms leaves five times that.
SLOW_PER_ROW = 0.0005

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id        text PRIMARY KEY,
    seq             bigint NOT NULL UNIQUE,
    client_order_id text UNIQUE,
    symbol          text NOT NULL,
    side            text NOT NULL,
    type            text NOT NULL,
    quantity        numeric NOT NULL,
    price           numeric,
    created_at      double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS trades (
    trade_id        text PRIMARY KEY,
    seq             bigint NOT NULL,
    symbol          text NOT NULL,
    price           numeric NOT NULL,
    quantity        numeric NOT NULL,
    buy_order_id    text NOT NULL,
    sell_order_id   text NOT NULL,
    taker_order_id  text NOT NULL
);
"""

# One statement per batch, orders and trades together: a single round trip and a single
# commit (one WAL fsync) in autocommit mode, atomic because it is one statement.
# unnest() turns column arrays into rows; ON CONFLICT DO NOTHING (on any unique key) is
# what makes a replayed spool record a no-op.
INSERT_BATCH = """
WITH new_orders AS (
  INSERT INTO orders (order_id, seq, client_order_id, symbol, side, type, quantity, price, created_at)
  SELECT o, s, c, sy, si, t, q::numeric, p::numeric, ts
  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::text[], $8::text[], $9::float8[]) AS u(o, s, c, sy, si, t, q, p, ts)
  ON CONFLICT DO NOTHING
  RETURNING 1
), new_trades AS (
  INSERT INTO trades (trade_id, seq, symbol, price, quantity, buy_order_id, sell_order_id, taker_order_id)
  SELECT i, s, sy, p::numeric, q::numeric, b, se, t
  FROM unnest($10::text[], $11::bigint[], $12::text[], $13::text[], $14::text[],
              $15::text[], $16::text[], $17::text[]) AS u(i, s, sy, p, q, b, se, t)
  ON CONFLICT DO NOTHING
  RETURNING 1
)
SELECT (SELECT count(*) FROM new_orders), (SELECT count(*) FROM new_trades)
"""
ORDER_COLUMNS = (
    "order_id", "seq", "client_order_id", "symbol", "side", "type", "quantity", "price", "created_at",
)
TRADE_COLUMNS = (
    "trade_id", "seq", "symbol", "price", "quantity", "buy_order_id", "sell_order_id", "taker_order_id",
)


def _columns(rows: list[Record], names: tuple[str, ...]) -> list[list[Any]]:
    # Numerics travel as their exact decimal text and are cast by PostgreSQL: cheaper for
    # the client than encoding Decimal objects.
    return [[r[n] for r in rows] for n in names]


class Store:
    def __init__(self, dsn: str, breaker: CircuitBreaker, timeout: float, pool_size: int) -> None:
        self.dsn = dsn
        self.breaker = breaker
        self.timeout = timeout
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def _ensure_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            # No command_timeout: asyncpg's own would cancel politely (see _with_conn).
            pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.pool_size, timeout=self.timeout,
            )
            try:
                async with pool.acquire() as conn:
                    await conn.execute(SCHEMA)
            except BaseException:
                pool.terminate()
                raise
            self._pool = pool
        return self._pool

    async def _with_conn(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``fn`` on a pooled connection; a connection whose call did not finish is
        terminated (socket closed), never cancelled politely: a cancel request and the
        pool's reset on release would wait on a peer that may not answer at all."""
        pool = await self._ensure_pool()
        conn = await pool.acquire()
        try:
            result = await fn(conn)
        except BaseException:
            conn.terminate()
            # A closed connection is released without a reset: this does not wait on the peer.
            await pool.release(conn)
            raise
        await pool.release(conn)
        return result

    async def connect(self) -> None:
        await call_dependency(self.breaker, self._ensure_pool, timeout=self.timeout, attempts=1)

    @property
    def connected(self) -> bool:
        return self._pool is not None

    def active_connections(self) -> int:
        if self._pool is None:
            return 0
        return int(self._pool.get_size() - self._pool.get_idle_size())

    def slow_after(self, rows: int) -> float | None:
        """How long a write of ``rows`` rows may take before the breaker counts it as slow."""
        if self.breaker.slow_call is None:
            return None
        return self.breaker.slow_call + SLOW_PER_ROW * rows

    async def insert(
        self, orders: list[Record], trades: list[Record], *, timeout: float | None = None,
        attempts: int = 2, judge_slow: bool = True,
    ) -> None:
        """Commit a batch of orders (and derived trades) atomically: one fsync.
        ``judge_slow``: a success slower than ``slow_after`` counts as a breaker failure."""

        async def run() -> None:
            await self._with_conn(lambda conn: conn.execute(
                INSERT_BATCH, *_columns(orders, ORDER_COLUMNS), *_columns(trades, TRADE_COLUMNS)
            ))

        await call_dependency(
            self.breaker, run, timeout=self.timeout if timeout is None else timeout,
            attempts=attempts,
            slow_after=self.slow_after(len(orders) + len(trades)) if judge_slow else math.inf,
        )

    async def reconcile_trades(
        self, trades: list[Record], upto: int | None = None, timeout: float = 60.0
    ) -> tuple[int, int]:
        """Make the trades table exactly the trades derived from the order log: insert the
        missing ones, delete those no replay of the log produces (fills of an order matched
        against a book that lacked part of the log). ``upto``: only trades of taker orders up
        to that seq are judged, the rest belong to orders the writer is storing meanwhile.
        Returns (inserted, deleted)."""

        async def run(conn: asyncpg.Connection) -> tuple[int, int]:
            wanted = {t["trade_id"] for t in trades}
            async with conn.transaction():
                if upto is None:
                    rows = await conn.fetch("SELECT trade_id FROM trades")
                else:
                    rows = await conn.fetch("SELECT trade_id FROM trades WHERE seq <= $1", upto)
                stored = {r[0] for r in rows}
                stale = sorted(stored - wanted)
                if stale:
                    await conn.execute("DELETE FROM trades WHERE trade_id = ANY($1::text[])", stale)
                missing = [t for t in trades if t["trade_id"] not in stored]
                for i in range(0, len(missing), 5000):
                    await conn.execute(
                        INSERT_BATCH, *_columns([], ORDER_COLUMNS),
                        *_columns(missing[i : i + 5000], TRADE_COLUMNS),
                    )
            return len(missing), len(stale)

        # Nobody waits for it, and thousands of rows take more than --slow-call on a healthy
        # database: its speed says nothing about the breaker's question.
        return await call_dependency(
            self.breaker, lambda: self._with_conn(run), timeout=max(self.timeout, timeout),
            attempts=1, slow_after=math.inf,
        )

    async def load_orders(self) -> list[Record]:
        async def run() -> list[Record]:
            pool = await self._ensure_pool()
            rows = await pool.fetch(f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders ORDER BY seq")
            return [
                {**dict(r), "quantity": str(r["quantity"]),
                 "price": None if r["price"] is None else str(r["price"])}
                for r in rows
            ]

        # Rebuilding a large book can take longer than one request's budget.
        return await call_dependency(self.breaker, run, timeout=max(self.timeout, 60), attempts=1)

    async def count_trades(self) -> int:
        async def run() -> int:
            pool = await self._ensure_pool()
            return int(await pool.fetchval("SELECT count(*) FROM trades"))

        return await call_dependency(self.breaker, run, timeout=self.timeout)

    async def get_order(self, order_id: str) -> Record | None:
        async def run() -> Record | None:
            pool = await self._ensure_pool()
            row = await pool.fetchrow(
                f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE order_id = $1", order_id
            )
            if row is None:
                return None
            filled = await pool.fetchval(
                "SELECT coalesce(sum(quantity), 0) FROM trades"
                " WHERE buy_order_id = $1 OR sell_order_id = $1", order_id,
            )
            return {**dict(row), "filled": filled}

        return await call_dependency(self.breaker, run, timeout=self.timeout)

    async def ping(self) -> bool:
        """A health check that bypasses the breaker: it is how we learn the database is back."""
        try:
            if self._pool is None:
                await self.connect()
                return True
            await abandon_after(self._with_conn(lambda c: c.fetchval("SELECT 1")), self.timeout)
            return True
        except Exception:  # any failure means "not up": the reason is in the breaker's error
            return False

    async def close(self) -> None:
        if self._pool is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._pool.close()
            except Exception:  # a dead server must not block shutdown
                self._pool.terminate()
