"""The fault proxy: a Toxiproxy-compatible TCP proxy with toxics and an HTTP API.

Run it with ``chaoslab proxy serve`` or ``python -m chaoslab.proxy serve``; drive it with any
Toxiproxy client or with :class:`chaoslab.proxy.client.ProxyClient`. Importing this package is
cheap: the server modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import ProxyApiError, ProxyClient

__all__ = ["ProxyApiError", "ProxyClient"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(name)
