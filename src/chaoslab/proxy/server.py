"""Run the proxy: load the config, start the API, serve until SIGINT/SIGTERM, close every link."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys

from ..errors import ChaoslabError
from .config import load_config
from .model import ApiError, join_address
from .proxy import ProxyCollection

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8474


async def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, config: str | None = None) -> None:
    from aiohttp import web

    from .api import make_app

    items = load_config(config) if config else []
    coll = ProxyCollection()
    runner = web.AppRunner(make_app(coll), access_log=None, handle_signals=False)
    try:
        for item, toxics in items:
            try:
                await coll.add_or_replace(item, toxics)
            except ApiError as exc:
                raise ChaoslabError(f"{config}: proxy {item.name!r}: {exc.message}") from None
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


def go_realtime(priority: int) -> bool:
    """SCHED_FIFO ``priority`` for this process, before any thread exists so that every thread
    it starts inherits it. The kernel refuses without CAP_SYS_NICE or RLIMIT_RTPRIO, or in a cgroup
    with no real-time budget: then a warning, and the proxy runs with ordinary scheduling.

    The kernel's real-time throttling (``sched_rt_runtime_us``, 95 % by default) keeps a proxy
    flooded with traffic from taking a core entirely."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        print(f"warning: the kernel refused SCHED_FIFO {priority} ({exc.strerror or exc}): the proxy runs with "
              "ordinary scheduling, so other load on the machine shows up in its latency", file=sys.stderr,
              flush=True)
        return False
    print(f"chaoslab proxy: running at SCHED_FIFO {priority}", file=sys.stderr, flush=True)
    return True


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, config: str | None = None,
        realtime: int | None = None) -> None:
    """Blocking entry point, on uvloop when installed."""
    if realtime:
        go_realtime(realtime)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        asyncio.run(serve(host, port, config))
        return
    if sys.version_info >= (3, 12):
        uvloop.run(serve(host, port, config))
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(serve(host, port, config))
