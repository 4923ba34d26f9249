"""A named proxy (listen -> upstream with its toxics) and the collection of them one server runs."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from typing import Any

from .link import Connection
from .model import (
    PROXY_EXISTS,
    PROXY_NOT_FOUND,
    TOXIC_EXISTS,
    TOXIC_NOT_FOUND,
    ApiError,
    ProxyInput,
    ToxicSpec,
    join_address,
    split_address,
)

log = logging.getLogger("chaoslab.proxy")
DEFAULT_LISTEN = "127.0.0.1:0"


class Proxy:
    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen or DEFAULT_LISTEN
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[str, ToxicSpec] = {}
        self.connections: set[Connection] = set()
        # Per direction [received, sent, of which spliced] bytes since the proxy was created
        # (Toxiproxy's metrics, and how much took the zero-copy path).
        self.bytes: dict[str, list[int]] = {"upstream": [0, 0, 0], "downstream": [0, 0, 0]}
        self.connections_total = 0
        self._server: asyncio.Server | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self._server is not None:
            return
        host, port = split_address(self.listen, "listen", allow_empty_host=True)
        upstream = split_address(self.upstream, "upstream", allow_empty_host=False)
        loop = asyncio.get_running_loop()

        def accept() -> asyncio.Protocol:
            return Connection(self, upstream, self.toxics.values()).client

        try:
            server = await loop.create_server(accept, host or None, port, backlog=4096, reuse_address=True)
        except OSError as exc:
            code = 409 if exc.errno == errno.EADDRINUSE else 400
            raise ApiError(f"cannot listen on {self.listen}: {exc.strerror or exc}", code) from None
        except (UnicodeError, ValueError) as exc:
            raise ApiError(f"cannot listen on {self.listen}: {exc}", 400) from None
        self._server = server
        # Report the real address (localhost becomes 127.0.0.1, port 0 the port the kernel chose),
        # as Toxiproxy does.
        sockname = server.sockets[0].getsockname()
        self.listen = join_address(sockname[0], sockname[1])
        self.enabled = True

    def stop(self) -> None:
        """Close the listener and every connection. Data in flight is dropped, as with Toxiproxy."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.close()
        self.enabled = False

    async def update(self, listen: str | None, upstream: str | None, enabled: bool | None) -> None:
        if listen is not None and listen != self.listen:
            split_address(listen, "listen", allow_empty_host=True)
        if upstream is not None:
            split_address(upstream, "upstream", allow_empty_host=False)
        moved = (listen is not None and listen != self.listen) or (
            upstream is not None and upstream != self.upstream
        )
        want = self.enabled if enabled is None else enabled
        if moved:
            old_listen = self.listen
            was_enabled = self.enabled
            self.stop()
            self.listen = listen if listen is not None else self.listen
            self.upstream = upstream if upstream is not None else self.upstream
            if want:
                try:
                    await self.start()
                except ApiError:
                    # Put the old listener back so a bad update does not take the link down.
                    self.listen = old_listen
                    if was_enabled:
                        await self.start()
                    raise
        elif want and not self.enabled:
            await self.start()
        elif not want and self.enabled:
            self.stop()

    # -- connections (ConnectionOwner) -----------------------------------------------------
    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.connections_total += 1

    def byte_counters(self, direction: str) -> list[int]:
        return self.bytes[direction]

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)

    # -- toxics ----------------------------------------------------------------------------
    def add_toxic(self, spec: ToxicSpec) -> None:
        if spec.name in self.toxics:
            raise TOXIC_EXISTS
        self.toxics[spec.name] = spec
        for conn in list(self.connections):
            if not conn.closed:
                conn.streams[spec.stream].add(spec)

    def get_toxic(self, name: str) -> ToxicSpec:
        try:
            return self.toxics[name]
        except KeyError:
            raise TOXIC_NOT_FOUND from None

    def remove_toxic(self, name: str) -> None:
        spec = self.get_toxic(name)
        del self.toxics[name]
        for conn in list(self.connections):
            conn.streams[spec.stream].remove(spec)

    def replace_toxic(self, new: ToxicSpec) -> None:
        old = self.get_toxic(new.name)
        self.toxics = {k: (new if k == new.name else v) for k, v in self.toxics.items()}
        for conn in list(self.connections):
            conn.streams[old.stream].replace(old, new)

    def reset_toxics(self) -> None:
        for name in list(self.toxics):
            self.remove_toxic(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics.values()],
        }


class ProxyCollection:
    """All proxies of one server, by name. Every mutation runs under one lock: API calls are rare.

    ``on_toxics`` hears the number of toxics set across all proxies after each change (the
    server's scheduling class follows it, see ``realtime.py``)."""

    def __init__(self, on_toxics: Callable[[int], None] | None = None) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()
        self._on_toxics = on_toxics

    def toxics_changed(self) -> None:
        if self._on_toxics is not None:
            self._on_toxics(sum(len(p.toxics) for p in self.proxies.values()))

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise PROXY_NOT_FOUND from None

    async def add(self, item: ProxyInput, toxics: list[ToxicSpec] | None = None) -> Proxy:
        if item.name in self.proxies:
            raise PROXY_EXISTS
        proxy = Proxy(item.name, item.listen, item.upstream)
        for spec in toxics or []:
            proxy.add_toxic(spec)
        if item.enabled is not False:
            await proxy.start()
        self.proxies[item.name] = proxy
        return proxy

    async def add_or_replace(self, item: ProxyInput, toxics: list[ToxicSpec] | None) -> Proxy:
        """``/populate``: keep an identical proxy (and its connections), replace a different one."""
        existing = self.proxies.get(item.name)
        if existing is not None:
            same = existing.upstream == item.upstream and (not item.listen or existing.listen == item.listen)
            if same:
                # Left as it is, enabled or not, as Toxiproxy's AddOrReplace does.
                if toxics is not None:
                    existing.reset_toxics()
                    for spec in toxics:
                        existing.add_toxic(spec)
                return existing
            self.remove(item.name)
        return await self.add(item, toxics)

    def remove(self, name: str) -> None:
        proxy = self.get(name)
        proxy.stop()
        del self.proxies[name]

    async def reset(self) -> None:
        for proxy in self.proxies.values():
            if not proxy.enabled:
                try:
                    await proxy.start()
                except ApiError as exc:
                    log.warning("reset: proxy %s: %s", proxy.name, exc.message)
            proxy.reset_toxics()

    def stop_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
