"""A python workload for tests: an in-memory store that refuses every fifth write."""

from __future__ import annotations

import asyncio
from typing import Any

from chaoslab.load import Refused

STORE: list[str] = []


async def write(ctx: dict[str, Any]) -> str:
    await asyncio.sleep(0.001)
    if ctx["seq"] % 5 == 0:
        raise Refused("every fifth write is refused")
    STORE.append(ctx["key"])
    return f"{ctx['args']['prefix']}{ctx['key']}"


def sync_write(ctx: dict[str, Any]) -> bool:
    return ctx["seq"] % 2 == 0


def read_back(ctx: dict[str, Any]) -> list[str]:
    """A python final read: what the in-memory store holds."""
    return list(STORE)


def broken_read(ctx: dict[str, Any]) -> list[str]:
    raise ConnectionError("store unreachable")
