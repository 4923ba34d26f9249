"""The reference system under test: a small simulated trading exchange.

Its own distribution, chaoslab-exchange (systems/exchange), outside chaoslab's wheel: chaoslab
never imports it, and it never imports chaoslab.
Entry points: ``python -m chaoslab_exchange.api``, ``python -m chaoslab_exchange.market``,
``python -m chaoslab_exchange.orderflow``.
"""

from chaoslab_exchange.engine import (
    MatchingEngine,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    Side,
    Trade,
)

__all__ = ["MatchingEngine", "Order", "OrderBook", "OrderStatus", "OrderType", "Side", "Trade"]
