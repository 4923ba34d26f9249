"""Run the proxy: load the config, start the API, serve until SIGINT/SIGTERM, close every link."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys

from ..errors import ChaoslabError
from .config import load_config
from .model import ApiError, join_address
from .proxy import ProxyCollection
from .realtime import TimingPriority, go_realtime

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8474


async def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, config: str | None = None,
                timing: bool = False) -> None:
    from aiohttp import web

    from .api import make_app

    items = load_config(config) if config else []
    coll = ProxyCollection(TimingPriority(timing).toxics_set)
    runner = web.AppRunner(make_app(coll), access_log=None, handle_signals=False)
    try:
        for item, toxics in items:
            try:
                await coll.add_or_replace(item, toxics)
            except ApiError as exc:
                raise ChaoslabError(f"{config}: proxy {item.name!r}: {exc.message}") from None
        coll.toxics_changed()
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            raise ChaoslabError(f"cannot listen on {join_address(host, port)}: {exc.strerror or exc}") from None
        server = site._server
        bound = port
        if isinstance(server, asyncio.base_events.Server) or hasattr(server, "sockets"):
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                bound = sockets[0].getsockname()[1]
        # One parseable line: tests and the stack read the chosen port from it.
        print(f"chaoslab proxy API listening on http://{join_address(host, bound)} ({len(coll.proxies)} proxies)", flush=True)
        # Everything loaded so far lives as long as the process: keep the cyclic GC from
        # rescanning it on every collection (pauses show up as round-trip outliers).
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        coll.stop_all()
        await runner.cleanup()


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, config: str | None = None,
        realtime: int | None = None, timing: bool = False) -> None:
    """Blocking entry point, on uvloop when installed. ``realtime``: SCHED_FIFO at that priority
    for good; else, with ``timing``, SCHED_RR 1 while toxics are set (``realtime.py``)."""
    if realtime:
        go_realtime(realtime)
        timing = False
    main = serve(host, port, config, timing)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        asyncio.run(main)
        return
    if sys.version_info >= (3, 12):
        uvloop.run(main)
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(main)
