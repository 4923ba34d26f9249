"""Service kinds by the key that selects them in the stack file."""

from __future__ import annotations

from ...registry import Registry
from .base import Context, Kind
from .command import Command
from .nginx import Nginx
from .postgres import Postgres
from .proxy import Proxy
from .redis import Redis

KINDS: Registry[Kind] = Registry("service kind")
for _kind in (Command(), Postgres(), Redis(), Nginx(), Proxy()):
    KINDS.add(_kind.name, _kind)

__all__ = ["KINDS", "Context", "Kind"]
