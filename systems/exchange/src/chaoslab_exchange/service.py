"""The order service: admission, idempotency, the single writer that makes orders
durable and then matches them, the spool replayer, and health.

Why one writer task: orders are persisted first (PostgreSQL, or the fsynced spool),
then matched, in one sequence. The book is therefore always a function of the durable
order log, a crash loses nothing acknowledged, and a restart rebuilds the same book by
replaying the log. Batching many requests into one transaction is also what makes the
API fast: one WAL fsync acknowledges a whole batch (group commit).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import logging
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chaoslab_exchange.breaker import BreakerState, CircuitBreaker
from chaoslab_exchange.cache import Cache
from chaoslab_exchange.config import Settings
from chaoslab_exchange.engine import MatchingEngine, Order, OrderType, Side, Trade
from chaoslab_exchange.index import OrderIndex
from chaoslab_exchange.metrics import BREAKER_VALUE, ApiMetrics
from chaoslab_exchange.resilience import DependencyError, abandon_after
from chaoslab_exchange.spool import Record, Spool
from chaoslab_exchange.store import Store

log = logging.getLogger("chaoslab_exchange.api")

COMMITTED = "committed"
FREEZE_EVERY = 10.0  # seconds between gc.freeze() calls
QUEUED = "accepted_queued"
DRAIN_IDLE = 0.1  # seconds the replayer sleeps when the spool is empty or the breaker open
TRIAL_CHUNK = 50  # spool records replayed by a half-open trial
MIN_ATTEMPT = 0.05  # seconds: a PostgreSQL attempt shorter than this is not worth making
SPOOL_MARGIN = 0.3  # seconds kept for the spool's fsync and the answer after a failed write
# Seconds a fill may wait for the next batch to carry it before the replayer writes it alone:
# without more orders the last batch's fills would otherwise wait forever.
TRADES_IDLE = 0.2
CATCH_UP_TIMEOUT = 30.0  # seconds for one catch-up of the trades table (thousands of rows)


class Overloaded(Exception):
    """Admission refused: too much work in flight."""


class NotDurable(Exception):
    """Neither PostgreSQL nor the spool could take the order: it was not accepted."""


class CannotProveNew(NotDurable):
    """A client_order_id the API cannot tell from a committed one (no PostgreSQL, no local
    index): accepting it could create a second order under an id already acknowledged."""


@dataclass(frozen=True, slots=True)
class Ack:
    body: dict[str, Any]
    created: bool  # False when a client_order_id retry returned the original order


def order_view(order: Order, durability: str | None = None, trades: list[Trade] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": str(order.side),
        "type": str(order.type),
        "quantity": float(order.quantity),
        "price": None if order.price is None else float(order.price),
        "status": str(order.status),
        "filled_quantity": float(order.filled),
    }
    if durability is not None:
        body["durability"] = durability
    if trades is not None:
        body["fills"] = [trade_view(t) for t in trades]
    return body


def trade_view(t: Trade) -> dict[str, Any]:
    return {
        "trade_id": t.trade_id, "symbol": t.symbol, "price": float(t.price),
        "quantity": float(t.quantity), "buy_order_id": t.buy_order_id,
        "sell_order_id": t.sell_order_id, "taker_order_id": t.taker_order_id,
    }


def order_record(o: Order, created_at: float) -> Record:
    return {
        "order_id": o.order_id, "seq": o.seq, "client_order_id": o.client_order_id,
        "symbol": o.symbol, "side": str(o.side), "type": str(o.type),
        "quantity": str(o.quantity), "price": None if o.price is None else str(o.price),
        "created_at": created_at,
    }


def trade_record(t: Trade) -> Record:
    return {
        "trade_id": t.trade_id, "seq": t.seq, "symbol": t.symbol, "price": str(t.price),
        "quantity": str(t.quantity), "buy_order_id": t.buy_order_id,
        "sell_order_id": t.sell_order_id, "taker_order_id": t.taker_order_id,
    }


def order_from_record(r: Record) -> Order:
    return Order(
        order_id=r["order_id"], seq=int(r["seq"]), symbol=r["symbol"], side=Side(r["side"]),
        type=OrderType(r["type"]), quantity=Decimal(r["quantity"]),
        price=None if r["price"] is None else Decimal(r["price"]),
        client_order_id=r["client_order_id"],
    )


@dataclass(slots=True)
class _Pending:
    order: Order
    created_at: float
    future: asyncio.Future[dict[str, Any]]


class OrderService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ApiMetrics()
        self.engine = MatchingEngine()
        self.db_breaker = CircuitBreaker(
            "postgres", settings.breaker_failures, settings.breaker_reset, settings.slow_call
        )
        self.cache_breaker = CircuitBreaker("redis", settings.breaker_failures, settings.breaker_reset)
        self.store = Store(settings.pg_dsn, self.db_breaker, settings.db_timeout, settings.pg_pool_size)
        self.cache = Cache(settings.redis_url, self.cache_breaker, self.metrics, settings.redis_timeout)
        self.spool = Spool(settings.spool_dir)
        self.index = OrderIndex(settings.spool_dir)
        self.database_up = False
        self.cache_up = False
        self.book_complete = False  # True once the book was rebuilt from PostgreSQL's log
        self.book_local = False  # rebuilt without PostgreSQL, from the local index + spool
        self.inflight = 0
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._by_client_id: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pending_trades: list[Record] = []  # sorted by seq (the taker's)
        self._trades_taken_at = 0.0  # monotonic time a write last took the pending trades
        # Trades a rebuild derived from the log while PostgreSQL could not take them: the fills of
        # spooled orders a killed process had acknowledged are among them, and only here.
        # Reconciled (missing inserted, stale deleted, up to _trades_due_upto) once the spool
        # has drained, without waiting for the next start.
        self._trades_due: list[Record] | None = None
        self._trades_due_upto = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._last_seq = 0
        self.spool_error: str | None = None
        self.internal_error: str | None = None

    # ---- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        # The line that times a start (with the "rebuilt the book" one), without the interpreter's
        # imports, which a busy machine stretches: tests/exchange/test_exchange_idempotency.py.
        log.info("starting: PostgreSQL gets at most %.1f s", self.settings.startup_timeout)
        await asyncio.to_thread(self.spool.open)
        await self._connect_database()
        await self._rebuild()
        self._writer = asyncio.create_task(self._write_loop(), name="writer")
        self._drainer = asyncio.create_task(self._drain_loop(), name="replayer")
        self._tasks = [
            asyncio.create_task(self.cache.run(), name="publisher"),
            asyncio.create_task(self._health_loop(), name="health"),
        ]

    async def _connect_database(self) -> None:
        # Every attempt is cut to what is left of --startup-timeout, so the API is up (on
        # the spool) within it, not one or two db timeouts later.
        deadline = time.monotonic() + self.settings.startup_timeout
        while True:
            left = deadline - time.monotonic()
            try:
                await abandon_after(self.store.connect(), max(0.1, left))
                self.database_up = True
                return
            except (DependencyError, TimeoutError) as e:
                if time.monotonic() + 0.5 >= deadline:
                    log.warning("starting without PostgreSQL (%s): orders go to the spool", e)
                    return
                await asyncio.sleep(0.5)

    async def _rebuild(self) -> None:
        """Replay the durable order log (PostgreSQL then spool) through the engine."""
        records: dict[str, Record] = {}
        if self.database_up:
            try:
                logged = await self.store.load_orders()
                for r in logged:
                    records[r["order_id"]] = r
                self.book_complete = True
                await asyncio.to_thread(self.index.rewrite, logged)
            except DependencyError as e:  # it went away between connect and load
                log.warning("could not load the order log, starting from the spool: %s", e)
                self.database_up = False
        if not self.book_complete and self.index.exists:
            confirmed, unsure = await asyncio.to_thread(self.index.load)
            for r in confirmed:
                records[r["order_id"]] = r
            spooled = {r["order_id"] for r in await asyncio.to_thread(self.spool.pending)}
            respool = [r for r in unsure if r["order_id"] not in spooled]
            if respool:
                # Batches sent to PostgreSQL with no word back: maybe committed, maybe not.
                # Spooled again, they end up in PostgreSQL exactly once either way.
                await asyncio.to_thread(self.spool.append, respool)
            self.book_local = True
        for r in await asyncio.to_thread(self.spool.pending):
            records.setdefault(r["order_id"], r)
        trades: list[Record] = []
        for r in sorted(records.values(), key=lambda r: int(r["seq"])):
            order = order_from_record(r)
            trades.extend(trade_record(t) for t in self.engine.submit(order))
            if order.client_order_id:
                done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
                done.set_result(order_view(order))
                self._by_client_id[order.client_order_id] = done
        self._last_seq = self.engine.last_seq
        # Trades are derived: rewrite any that a crash kept out of PostgreSQL.
        # Trades no replay produces (a book that once lacked part of the log) go: a fill
        # must never be counted against an order beyond its quantity.
        # A book rebuilt from the local index is the log's own book (issue 16), so its trades
        # are the log's: they wait for PostgreSQL (issue 24: before, they waited for the next
        # start). A partial book's are not, and are never written: the next start does that.
        if self.book_complete or self.book_local:
            self._trades_due, self._trades_due_upto = trades, self.engine.last_seq
        try:
            if self.database_up and self.book_complete:
                # Nothing else writes yet: the whole table is judged, stray rows of any seq go.
                added, removed = await self.store.reconcile_trades(trades)
                self._trades_due = None
                if added or removed:
                    log.warning("trades reconciled with the order log: %d added, %d removed",
                                added, removed)
        except DependencyError as e:  # derived data: the replayer tries again
            log.warning("could not reconcile derived trades: %s", e)
        self.metrics.spool_depth.set(self.spool.depth)
        # The rebuilt book is long-lived: keep it out of every future full collection,
        # whose pauses would otherwise grow with the history and land in the p99.
        gc.freeze()
        log.info("rebuilt the book from %d orders (%d in the spool)", len(records), self.spool.depth)

    async def stop(self) -> None:
        """Graceful shutdown: finish queued orders, then try to flush the spool."""
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(BaseException):
                await self._drainer
        if self._writer is not None:
            await self._queue.put(None)
            with contextlib.suppress(Exception):
                await self._writer
        deadline = time.monotonic() + self.settings.shutdown_flush
        while self.spool.depth and time.monotonic() < deadline:
            if not await self._drain_spool_step():
                await asyncio.sleep(0.2)
        if not self.spool.depth and self._pending_trades:
            with contextlib.suppress(DependencyError):  # the next start derives them again
                await self._flush_trades()
        await self.cache.stop()
        for task in self._tasks:
            if task.get_name() == "publisher":
                with contextlib.suppress(TimeoutError, Exception):
                    async with asyncio.timeout(1.0):
                        await task
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        await self.store.close()
        await self.cache.close()
        self.index.close()
        log.info("stopped cleanly; %d orders left in the spool", self.spool.depth)

    # ---- the request path --------------------------------------------------------

    def _next_seq(self) -> int:
        # Microsecond clock, kept monotonic: unique and ordered across restarts even
        # when the API starts without PostgreSQL and cannot read the last seq.
        self._last_seq = max(self._last_seq + 1, time.time_ns() // 1000)
        return self._last_seq

    async def submit(
        self, symbol: str, side: Side, type_: OrderType, quantity: Decimal,
        price: Decimal | None, client_order_id: str | None,
    ) -> Ack:
        if self.inflight >= self.settings.max_inflight:
            self.metrics.orders.labels("REJECTED").inc()
            raise Overloaded()
        self.inflight += 1
        started = time.perf_counter()
        try:
            if client_order_id is not None and client_order_id in self._by_client_id:
                # A retry: never a second order; wait for the first one's outcome.
                return Ack(await asyncio.shield(self._by_client_id[client_order_id]), created=False)
            if client_order_id is not None and not (self.book_complete or self.book_local):
                self.metrics.orders.labels("FAILED").inc()
                raise CannotProveNew(
                    "PostgreSQL unavailable and no local order index: cannot tell whether "
                    f"client_order_id {client_order_id!r} was already committed"
                )
            order = Order(
                order_id=str(uuid.uuid4()), seq=self._next_seq(), symbol=symbol, side=side,
                type=type_, quantity=quantity, price=price, client_order_id=client_order_id,
            )
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            if client_order_id is not None:
                self._by_client_id[client_order_id] = future
            self._queue.put_nowait(_Pending(order, time.time(), future))
            try:
                body = await asyncio.shield(future)
            except NotDurable:
                self.metrics.orders.labels("FAILED").inc()
                raise
            self.metrics.orders.labels(body["status"]).inc()
            self.metrics.durability.labels(body["durability"]).inc()
            self.metrics.duration.observe(time.perf_counter() - started)
            return Ack(body, created=True)
        finally:
            self.inflight -= 1

    # ---- the writer --------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.settings.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                await self._persist_and_match(batch)
            except Exception as e:
                # A bug, not a dependency failure (those are handled inside): never leave
                # requests hanging, and say so on /health.
                log.exception("writer failed on a batch of %d orders", len(batch))
                self.internal_error = f"{type(e).__name__}: {e}"
                for p in batch:
                    self._fail(p, NotDurable(f"internal error: {self.internal_error}"))
            if stop:
                return

    async def _drain_loop(self) -> None:
        """Replays the spool beside the writer, never in its way: with the replay in the
        writer's path every new order waited for a chunk's commit after a fault (recovery
        p99 2.4 s in 05). The two never write to PostgreSQL at once: the writer inserts only
        while the spool is empty, and only the writer makes it non-empty."""
        while True:
            try:
                progress = await self._drain_spool_step() or await self._catch_up_trades()
            except Exception:  # the spool file itself failed: keep it, try again later
                log.exception("replaying the spool failed")
                progress = False
            if not progress:
                await asyncio.sleep(DRAIN_IDLE)

    def _budget(self, batch: list[_Pending]) -> float:
        """What is left of the oldest order's deadline, minus a margin for the spool."""
        oldest = min(p.created_at for p in batch)
        return self.settings.order_deadline - (time.time() - oldest) - SPOOL_MARGIN

    async def _insert_logged(self, records: list[Record], budget: float, replay: bool = False) -> None:
        """Insert into PostgreSQL within ``budget`` seconds, recorded in the local index.

        ``replay``: a spool replay. Nobody waits for it, so its speed is judged only when it is a
        half-open trial; a slow replay of a big chunk on a busy machine is not a slow database
        (judged, it kept the breaker open after 02's partition on a machine at load 40). A trial
        carries no trades either: it only has to show that PostgreSQL commits fast again."""
        timeout = min(self.settings.db_timeout, budget)
        trial = self.db_breaker.state is BreakerState.HALF_OPEN
        trades: list[Record] = []
        if not (replay and trial):
            # Taken, not shared: the writer keeps adding trades while a replay is in flight.
            # A replayed chunk carries only fills of its own orders and older ones: a fill must
            # not reach PostgreSQL before its taker (an orphan fill until a later chunk).
            # Without a spool every pending fill's orders are in PostgreSQL.
            cut = len(self._pending_trades)
            if replay:
                last = max(int(r["seq"]) for r in records)
                cut = bisect.bisect_right(self._pending_trades, last, key=lambda t: int(t["seq"]))
            trades, self._pending_trades = self._pending_trades[:cut], self._pending_trades[cut:]
            self._trades_taken_at = time.monotonic()
        slow = self.store.slow_after(len(records) + len(trades))
        if trial and slow is not None:
            # The trial only has to show the database is fast again: slower is a failure anyway.
            timeout = min(timeout, slow)
        attempts = 2 if budget >= 2 * self.settings.db_timeout else 1
        await asyncio.to_thread(self.index.intent, records)
        try:
            await self.store.insert(records, trades, timeout=timeout, attempts=attempts,
                                    judge_slow=trial or not replay)
        except BaseException:
            self._put_back(trades)
            raise
        await asyncio.to_thread(self.index.confirm, len(records))

    async def _persist_and_match(self, batch: list[_Pending]) -> None:
        records = [order_record(p.order, p.created_at) for p in batch]
        durability: str | None = None
        # While older orders wait in the spool, newer ones queue behind them so the
        # PostgreSQL log keeps the acknowledged order. An order whose deadline is (nearly)
        # spent goes to the spool without trying PostgreSQL: acks within --order-deadline.
        budget = self._budget(batch)
        if not self.spool.depth and budget > MIN_ATTEMPT:
            try:
                await self._insert_logged(records, budget)
                durability = COMMITTED
            except DependencyError as e:
                log.warning("PostgreSQL write failed, spooling %d orders: %s", len(batch), e)
        if durability is None:
            try:
                await asyncio.to_thread(self.spool.append, records)
                durability = QUEUED
                self.spool_error = None
                self.metrics.spooled.inc(len(records))
                self.metrics.spool_depth.set(self.spool.depth)
            except OSError as e:
                self.spool_error = str(e)
                for p in batch:
                    self._fail(p, NotDurable(f"order not stored: database and spool unavailable ({e})"))
                return
        for p in batch:
            trades = self.engine.submit(p.order)
            if len(self._pending_trades) < self.settings.max_pending_trades:
                # Beyond the cap the trades are still regenerated by the next rebuild.
                self._pending_trades.extend(trade_record(t) for t in trades)
            body = order_view(p.order, durability, trades)
            if not p.future.done():
                p.future.set_result(body)
            self.cache.publish(order_view(p.order), [trade_view(t) for t in trades])
            for t in trades:
                maker_id = t.sell_order_id if t.taker_order_id == t.buy_order_id else t.buy_order_id
                self.cache.publish(order_view(self.engine.orders[maker_id]), [])

    async def _catch_up_trades(self) -> bool:
        """Write the trades PostgreSQL lacks while nothing else will: those a rebuild derived
        without it, and fills no batch carried for TRADES_IDLE. Only with the spool empty, so
        every order they name is stored. True on progress."""
        if self.spool.depth or self.db_breaker.state is not BreakerState.CLOSED:
            return False
        try:
            if self._trades_due is not None:
                await self._reconcile_due_trades()
                return True
            if self._pending_trades and time.monotonic() - self._trades_taken_at >= TRADES_IDLE:
                await self._flush_trades()
                return True
        except DependencyError as e:
            log.warning("trades not caught up yet: %s", e)
        return False

    async def _reconcile_due_trades(self) -> None:
        assert self._trades_due is not None
        added, removed = await self.store.reconcile_trades(
            self._trades_due, upto=self._trades_due_upto, timeout=CATCH_UP_TIMEOUT
        )
        self._trades_due = None
        if added or removed:
            log.warning("trades reconciled with the order log: %d added, %d removed", added, removed)

    async def _flush_trades(self) -> None:
        trades, self._pending_trades = self._pending_trades, []
        self._trades_taken_at = time.monotonic()
        try:
            await self.store.insert([], trades, timeout=self.settings.db_timeout, attempts=1,
                                    judge_slow=False)
        except BaseException:
            self._put_back(trades)
            raise

    def _put_back(self, trades: list[Record]) -> None:
        """Return fills a failed write took. Sorted again (two sorted runs: a linear merge):
        a failed flush and a failed batch may put theirs back in either order, and a replayed
        chunk picks its fills by seq."""
        self._pending_trades = sorted(trades + self._pending_trades, key=lambda t: int(t["seq"]))

    def _fail(self, p: _Pending, error: Exception) -> None:
        if p.order.client_order_id is not None:
            self._by_client_id.pop(p.order.client_order_id, None)
        if not p.future.done():
            p.future.set_exception(error)
            p.future.exception()  # mark retrieved: the waiter may already be gone

    async def _drain_spool_step(self) -> bool:
        """Replay one chunk of the spool into PostgreSQL, oldest first. True on progress."""
        if not self.spool.depth or self.db_breaker.state is BreakerState.OPEN:
            return False  # do not even read the spool while the breaker says "not yet"
        # A half-open trial replays one batch's worth, not a whole chunk: it only has to show
        # that PostgreSQL is fast again, and its timeout is short.
        chunk = self.settings.replay_chunk
        if self.db_breaker.state is BreakerState.HALF_OPEN:
            chunk = min(chunk, TRIAL_CHUNK)
        records, end = await asyncio.to_thread(self.spool.read_pending, chunk)
        try:
            await self._insert_logged(records, 2 * self.settings.db_timeout, replay=True)
        except DependencyError:
            return False
        await asyncio.to_thread(self.spool.advance, end, len(records))
        self.metrics.replayed.inc(len(records))
        self.metrics.spool_depth.set(self.spool.depth)
        if not self.spool.depth:
            log.info("spool drained into PostgreSQL")
        return True

    # ---- health --------------------------------------------------------------------

    async def _health_loop(self) -> None:
        last_freeze = time.monotonic()
        while True:
            if time.monotonic() - last_freeze >= FREEZE_EVERY:
                # Orders live as long as the process: move them out of the collector's
                # sight so full collections (whose pauses grow with the history) stay
                # short. Young cycles are collected before they get here; the rare cyclic
                # garbage frozen with them is a bounded leak we accept for a flat p99.
                gc.freeze()
                last_freeze = time.monotonic()
            self.database_up, self.cache_up = await asyncio.gather(self.store.ping(), self.cache.ping())
            m = self.metrics
            m.dependency_up.labels("postgres").set(int(self.database_up))
            m.dependency_up.labels("redis").set(int(self.cache_up))
            m.db_connections.set(self.store.active_connections())
            m.inflight.set(self.inflight)  # sampled here: a gauge write per request costs a lock
            for b in (self.db_breaker, self.cache_breaker):
                m.breaker_state.labels(b.name).set(BREAKER_VALUE[b.state])
                m.breaker_opened.labels(b.name).set(b.opened_count)
            await asyncio.sleep(self.settings.health_interval)

    def health(self) -> dict[str, Any]:
        writer_alive = self._writer is not None and not self._writer.done()
        # A broken spool is fatal only while it is the sole way to store an order.
        if not writer_alive or self.internal_error or (self.spool_error and not self.database_up):
            status = "unhealthy"
        elif (
            self.spool_error or not self.database_up or not self.cache_up or self.spool.depth
            or self._trades_due is not None
            or self.db_breaker.state != "closed" or self.cache_breaker.state != "closed"
        ):
            status = "degraded"
        else:
            status = "healthy"
        return {
            "status": status,
            "database": "up" if self.database_up else "down",
            "cache": "up" if self.cache_up else "down",
            "spool_depth": self.spool.depth,
            "breakers": {b.name: str(b.state) for b in (self.db_breaker, self.cache_breaker)},
            "book": "complete" if self.book_complete else "local" if self.book_local else "partial",
            # behind: trades the log implies wait for PostgreSQL; unverified: derived from a
            # partial book, made right by the next start that can read the log.
            "trades": "behind" if self._trades_due is not None
            else "current" if self.book_complete or self.book_local else "unverified",
            "inflight": self.inflight,
            "error": self.spool_error or self.internal_error,
        }
