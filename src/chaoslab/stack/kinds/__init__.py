"""Service kinds by the key that selects them in the stack file."""

from __future__ import annotations

from .base import Context, Kind
from .command import Command
from .nginx import Nginx
from .postgres import Postgres
from .proxy import Proxy
from .redis import Redis

KINDS: dict[str, Kind] = {k.name: k for k in (Command(), Postgres(), Redis(), Nginx(), Proxy())}

__all__ = ["KINDS", "Context", "Kind"]
