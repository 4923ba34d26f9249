"""``chaoslab demo``: seed 004's demonstration (see ``command``)."""

from .command import demo

__all__ = ["demo"]
