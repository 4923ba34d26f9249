"""Price-time priority matching engine: one limit order book per symbol.

Pure Python and synchronous on purpose: the API calls it from a single writer task,
in sequence order, so the book is a deterministic function of the persisted order log
and can be rebuilt at start by replaying that log.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class OrderStatus(StrEnum):
    NEW = "NEW"  # resting, nothing filled yet
    PARTIALLY_FILLED = "PARTIALLY_FILLED"  # resting, part filled
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"  # market order remainder with no liquidity left


ZERO = Decimal(0)


@dataclass(slots=True)
class Order:
    order_id: str
    seq: int
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    client_order_id: str | None = None
    filled: Decimal = ZERO
    status: OrderStatus = OrderStatus.NEW

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: str
    seq: int  # seq of the taker order: trades are ordered by the order that caused them
    symbol: str
    price: Decimal
    quantity: Decimal
    buy_order_id: str
    sell_order_id: str
    taker_order_id: str


@dataclass(slots=True)
class _Level:
    price: Decimal
    orders: deque[Order] = field(default_factory=deque)


class OrderBook:
    """Bids and asks as sorted price lists plus one FIFO queue per price level."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        # Both price lists ascending; the best bid is the last, the best ask the first.
        self._bid_prices: list[Decimal] = []
        self._ask_prices: list[Decimal] = []
        self._bids: dict[Decimal, _Level] = {}
        self._asks: dict[Decimal, _Level] = {}

    def best_bid(self) -> Decimal | None:
        return self._bid_prices[-1] if self._bid_prices else None

    def best_ask(self) -> Decimal | None:
        return self._ask_prices[0] if self._ask_prices else None

    def submit(self, order: Order) -> list[Trade]:
        if order.symbol != self.symbol:
            raise ValueError(f"order for {order.symbol} sent to the {self.symbol} book")
        trades = self._match(order)
        if order.remaining > ZERO:
            if order.type is OrderType.LIMIT:
                self._rest(order)
                order.status = OrderStatus.PARTIALLY_FILLED if order.filled else OrderStatus.NEW
            else:
                order.status = OrderStatus.CANCELLED
        else:
            order.status = OrderStatus.FILLED
        return trades

    def _crosses(self, order: Order, level_price: Decimal) -> bool:
        if order.type is OrderType.MARKET:
            return True
        assert order.price is not None
        if order.side is Side.BUY:
            return level_price <= order.price
        return level_price >= order.price

    def _match(self, taker: Order) -> list[Trade]:
        trades: list[Trade] = []
        buying = taker.side is Side.BUY
        prices = self._ask_prices if buying else self._bid_prices
        levels = self._asks if buying else self._bids
        while taker.remaining > ZERO and prices:
            best = prices[0] if buying else prices[-1]
            if not self._crosses(taker, best):
                break
            level = levels[best]
            while taker.remaining > ZERO and level.orders:
                maker = level.orders[0]
                qty = min(taker.remaining, maker.remaining)
                taker.filled += qty
                maker.filled += qty
                trades.append(
                    Trade(
                        trade_id=f"{taker.order_id}:{len(trades)}",
                        seq=taker.seq,
                        symbol=self.symbol,
                        price=best,  # the resting order's price: makers set the price
                        quantity=qty,
                        buy_order_id=taker.order_id if buying else maker.order_id,
                        sell_order_id=maker.order_id if buying else taker.order_id,
                        taker_order_id=taker.order_id,
                    )
                )
                if maker.remaining == ZERO:
                    maker.status = OrderStatus.FILLED
                    level.orders.popleft()
                else:
                    maker.status = OrderStatus.PARTIALLY_FILLED
            if not level.orders:
                del levels[best]
                prices.pop(0 if buying else -1)
        return trades

    def _rest(self, order: Order) -> None:
        assert order.price is not None
        prices, levels = (
            (self._bid_prices, self._bids) if order.side is Side.BUY else (self._ask_prices, self._asks)
        )
        level = levels.get(order.price)
        if level is None:
            level = levels[order.price] = _Level(order.price)
            bisect.insort(prices, order.price)
        level.orders.append(order)

    def depth(self, levels: int = 10) -> dict[str, list[tuple[Decimal, Decimal, int]]]:
        """Aggregated (price, quantity, order count) per level, best first."""

        def side(prices: Iterable[Decimal], book: dict[Decimal, _Level]) -> list[tuple[Decimal, Decimal, int]]:
            out = []
            for price in prices:
                level = book[price]
                out.append((price, sum((o.remaining for o in level.orders), ZERO), len(level.orders)))
                if len(out) >= levels:
                    break
            return out

        return {
            "bids": side(reversed(self._bid_prices), self._bids),
            "asks": side(self._ask_prices, self._asks),
        }

    def resting_orders(self) -> list[Order]:
        """Every resting order, bids then asks, each in priority order (for checks)."""
        out: list[Order] = []
        for price in reversed(self._bid_prices):
            out.extend(self._bids[price].orders)
        for price in self._ask_prices:
            out.extend(self._asks[price].orders)
        return out


class MatchingEngine:
    """All books, every order's state by id, and a bounded tail of recent trades."""

    def __init__(self, recent_trades: int = 10_000) -> None:
        self.books: dict[str, OrderBook] = {}
        self.orders: dict[str, Order] = {}
        self.recent_trades: deque[Trade] = deque(maxlen=recent_trades)
        self.last_seq = 0

    def book(self, symbol: str) -> OrderBook:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = OrderBook(symbol)
        return book

    def submit(self, order: Order) -> list[Trade]:
        if order.order_id in self.orders:
            raise ValueError(f"order {order.order_id} was already submitted")
        if order.seq <= self.last_seq:
            raise ValueError(f"order seq {order.seq} is not after {self.last_seq}")
        self.last_seq = order.seq
        self.orders[order.order_id] = order
        trades = self.book(order.symbol).submit(order)
        self.recent_trades.extend(trades)
        return trades
