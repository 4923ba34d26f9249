"""A controllable HTTP service whose misbehaviour is known exactly: the ground truth for analysis.

Run as its own process: ``python loadtruth_service.py`` prints ``PORT <n>`` once listening on
127.0.0.1 (ephemeral port). Writes are ``POST /orders {"seq": n, "key": "..."}`` answered
``201 {"id": key}``; ``GET /orders`` lists what is stored (``GET /orders/{id}``: 200 or 404); ``GET /health`` is 200 unless failing.
``POST /control`` sets the misbehaviour:

- ``fail_for: X``      every request fails with 503 (and stores nothing) for exactly X seconds
- ``stall_for: X``     every request arriving in the next X seconds is held until they end
- ``drop: [seq]``      acknowledge these writes but never store them (silent loss)
- ``duplicate: [seq]`` store these writes twice
- ``refuse_store: [seq]`` answer 400 but store them anyway (a lie: "resurrected" writes)
- ``phantom: [id]``    add ids nobody wrote ("unexpected" writes)

The reply of /control carries the service's monotonic time so tests can tie it to their clock.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from aiohttp import web


class State:
    def __init__(self) -> None:
        self.fail_until = 0.0
        self.stall_until = 0.0
        self.drop: set[int] = set()
        self.duplicate: set[int] = set()
        self.refuse_store: set[int] = set()
        self.stored: list[str] = []


async def _gate(state: State) -> web.Response | None:
    now = time.monotonic()
    if now < state.stall_until:
        await asyncio.sleep(state.stall_until - now)
    if time.monotonic() < state.fail_until:
        return web.json_response({"error": "failing on purpose"}, status=503)
    return None


def app() -> web.Application:
    state = State()

    async def orders_post(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        failed = await _gate(state)
        if failed is not None:
            return failed
        seq, key = int(body["seq"]), str(body["key"])
        if seq not in state.drop:
            state.stored.append(key)
        if seq in state.duplicate:
            state.stored.append(key)
        if seq in state.refuse_store:
            return web.json_response({"error": "rejected"}, status=400)
        return web.json_response({"id": key}, status=201)

    async def orders_get(_request: web.Request) -> web.Response:
        return web.json_response({"orders": [{"id": k} for k in state.stored]})

    async def order_get(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key in state.stored:
            return web.json_response({"id": key})
        return web.json_response({"error": "not found"}, status=404)

    async def health(_request: web.Request) -> web.Response:
        failed = await _gate(state)
        return failed or web.json_response({"status": "ok"})

    async def hello(_request: web.Request) -> web.Response:
        failed = await _gate(state)
        return failed or web.Response(text="hello")

    async def control(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        now = time.monotonic()
        if "fail_for" in body:
            state.fail_until = now + float(body["fail_for"])
        if "stall_for" in body:
            state.stall_until = now + float(body["stall_for"])
        state.drop |= set(body.get("drop", []))
        state.duplicate |= set(body.get("duplicate", []))
        state.refuse_store |= set(body.get("refuse_store", []))
        state.stored.extend(str(p) for p in body.get("phantom", []))
        return web.json_response({"now": now})

    application = web.Application()
    application.add_routes(
        [
            web.post("/orders", orders_post),
            web.get("/orders", orders_get),
            web.get("/orders/{key}", order_get),
            web.get("/health", health),
            web.get("/hello", hello),
            web.post("/control", control),
        ]
    )
    return application


async def main() -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
