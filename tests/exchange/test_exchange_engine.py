"""Property tests of the matching engine against a naive reference matcher."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from chaoslab_exchange.engine import ZERO, MatchingEngine, Order, OrderStatus, OrderType, Side

SYMBOL = "BTCUSD"


@st.composite
def order_inputs(draw: st.DrawFn) -> list[tuple[Side, OrderType, Decimal, Decimal | None]]:
    n = draw(st.integers(min_value=1, max_value=60))
    out = []
    for _ in range(n):
        side = draw(st.sampled_from(list(Side)))
        kind = draw(st.sampled_from([OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET]))
        qty = Decimal(draw(st.integers(min_value=1, max_value=50))) / 10
        # A narrow price band so orders cross often and levels hold several orders.
        price = (
            Decimal(draw(st.integers(min_value=95, max_value=105)))
            if kind is OrderType.LIMIT
            else None
        )
        out.append((side, kind, qty, price))
    return out


def build(inputs: list[tuple[Side, OrderType, Decimal, Decimal | None]]) -> list[Order]:
    return [
        Order(order_id=f"o{i}", seq=i + 1, symbol=SYMBOL, side=s, type=t, quantity=q, price=p)
        for i, (s, t, q, p) in enumerate(inputs)
    ]


@dataclass
class _Resting:
    order: Order
    remaining: Decimal


def reference_trades(orders: list[Order]) -> list[tuple[str, str, Decimal, Decimal]]:
    """O(n^2) matcher written from the rule itself: best price first, then earliest."""
    resting: list[_Resting] = []
    out: list[tuple[str, str, Decimal, Decimal]] = []
    for o in orders:
        remaining = o.quantity
        while remaining > 0:
            opposite = [r for r in resting if r.order.side is not o.side]
            if o.type is OrderType.LIMIT:
                limit = o.price
                assert limit is not None
                # Resting orders are all limits, so their price is set.
                if o.side is Side.BUY:
                    opposite = [r for r in opposite if (r.order.price or ZERO) <= limit]
                else:
                    opposite = [r for r in opposite if (r.order.price or ZERO) >= limit]
            if not opposite:
                break
            sign = 1 if o.side is Side.BUY else -1
            best = min(opposite, key=lambda r: (sign * (r.order.price or ZERO), r.order.seq))
            qty = min(remaining, best.remaining)
            out.append((best.order.order_id, o.order_id, best.order.price or ZERO, qty))
            remaining -= qty
            best.remaining -= qty
            if best.remaining == 0:
                resting.remove(best)
        if remaining > 0 and o.type is OrderType.LIMIT:
            resting.append(_Resting(o, remaining))
    return out


@settings(max_examples=300, deadline=None)
@given(order_inputs())
def test_quantity_is_conserved(
    inputs: list[tuple[Side, OrderType, Decimal, Decimal | None]],
) -> None:
    engine = MatchingEngine()
    orders = build(inputs)
    trades = [t for o in orders for t in engine.submit(o)]
    filled: dict[str, Decimal] = {}
    for t in trades:
        assert t.quantity > 0
        filled[t.buy_order_id] = filled.get(t.buy_order_id, ZERO) + t.quantity
        filled[t.sell_order_id] = filled.get(t.sell_order_id, ZERO) + t.quantity
    resting = {o.order_id for o in engine.book(SYMBOL).resting_orders()}
    for o in orders:
        assert o.filled == filled.get(o.order_id, ZERO)
        assert ZERO <= o.filled <= o.quantity
        if o.order_id in resting:
            assert o.type is OrderType.LIMIT and o.remaining > 0
            assert o.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
        elif o.remaining == 0:
            assert o.status is OrderStatus.FILLED
        else:
            # Only a market order may leave the book with quantity left: it was cancelled.
            assert o.type is OrderType.MARKET and o.status is OrderStatus.CANCELLED
    bought = sum((t.quantity for t in trades), ZERO)
    assert bought == sum((o.filled for o in orders if o.side is Side.BUY), ZERO)
    assert bought == sum((o.filled for o in orders if o.side is Side.SELL), ZERO)


@settings(max_examples=300, deadline=None)
@given(order_inputs())
def test_book_never_crossed_at_rest(
    inputs: list[tuple[Side, OrderType, Decimal, Decimal | None]],
) -> None:
    engine = MatchingEngine()
    book = engine.book(SYMBOL)
    for o in build(inputs):
        engine.submit(o)
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            assert bid < ask


@settings(max_examples=300, deadline=None)
@given(order_inputs())
def test_price_time_priority_matches_reference(
    inputs: list[tuple[Side, OrderType, Decimal, Decimal | None]],
) -> None:
    engine = MatchingEngine()
    orders = build(inputs)
    got = []
    for o in orders:
        for t in engine.submit(o):
            maker = t.sell_order_id if t.taker_order_id == t.buy_order_id else t.buy_order_id
            got.append((maker, t.taker_order_id, t.price, t.quantity))
    assert got == reference_trades(build(inputs))


def test_partial_fill_rests_remainder_at_limit_price() -> None:
    engine = MatchingEngine()
    engine.submit(Order("s1", 1, SYMBOL, Side.SELL, OrderType.LIMIT, Decimal(2), Decimal(100)))
    buy = Order("b1", 2, SYMBOL, Side.BUY, OrderType.LIMIT, Decimal(5), Decimal(101))
    trades = engine.submit(buy)
    assert [(t.price, t.quantity) for t in trades] == [(Decimal(100), Decimal(2))]
    assert buy.status is OrderStatus.PARTIALLY_FILLED and buy.remaining == 3
    assert engine.book(SYMBOL).depth()["bids"] == [(Decimal(101), Decimal(3), 1)]


def test_replay_is_deterministic_and_rejects_out_of_order_seq() -> None:
    a, b = MatchingEngine(), MatchingEngine()
    for o in build([(Side.SELL, OrderType.LIMIT, Decimal(1), Decimal(100))] * 3):
        a.submit(o)
    for o in build([(Side.SELL, OrderType.LIMIT, Decimal(1), Decimal(100))] * 3):
        b.submit(o)
    assert a.book(SYMBOL).depth() == b.book(SYMBOL).depth()
    try:
        a.submit(Order("late", 1, SYMBOL, Side.BUY, OrderType.MARKET, Decimal(1)))
    except ValueError as e:
        assert "seq" in str(e)
    else:
        raise AssertionError("an out-of-order seq was accepted")
