"""The reference system under test: a small simulated trading exchange.

Its own package: chaoslab never imports it, and it never imports chaoslab.
Entry points: ``python -m exchange.api``, ``python -m exchange.market``,
``python -m exchange.orderflow``.
"""

from exchange.engine import MatchingEngine, Order, OrderBook, OrderStatus, OrderType, Side, Trade

__all__ = ["MatchingEngine", "Order", "OrderBook", "OrderStatus", "OrderType", "Side", "Trade"]
