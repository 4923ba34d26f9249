"""The HTTP API, compatible with Toxiproxy 2.x: same routes, JSON shapes and status codes.

Differences, on purpose: errors for unknown routes and methods are JSON too; a listen address
already in use is 409 (Toxiproxy answers 500); proxies in ``/populate`` and the config file may
carry their ``toxics``; ``GET /openapi.json`` serves the OpenAPI document.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from .metrics import CONTENT_TYPE, exposition
from .model import (
    ApiError,
    ProxyInput,
    ProxyUpdate,
    ToxicSpec,
    bad_body,
    parse_json,
    toxic_from_json,
    toxic_updated,
    validation_message,
)
from .openapi import document
from .proxy import ProxyCollection

log = logging.getLogger("chaoslab.proxy.api")
VERSION = "2.12.0"
"""The Toxiproxy API version we answer as (``GET /version``)."""

COLLECTION: web.AppKey[ProxyCollection] = web.AppKey("collection", ProxyCollection)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def no_content() -> web.Response:
    return web.Response(status=204)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.to_json(), exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response({"error": exc.reason.lower(), "status": exc.status}, exc.status)
    except Exception as exc:  # a bug: answer it, log it, keep serving every other link
        log.exception("internal error on %s %s", request.method, request.path)
        return json_response({"error": f"internal error: {exc}", "status": 500}, 500)


@web.middleware
async def toxics_changed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After any request that may add or remove toxics (every one but a read), tell the collection."""
    try:
        return await handler(request)
    finally:
        if request.method != "GET":
            collection(request).toxics_changed()


async def body(request: web.Request) -> Any:
    return parse_json(await request.read())


def collection(request: web.Request) -> ProxyCollection:
    return request.app[COLLECTION]


# -- proxies -----------------------------------------------------------------------------------

async def proxy_index(request: web.Request) -> web.Response:
    proxies = collection(request).proxies
    return json_response({name: p.to_json() for name, p in proxies.items()})


async def proxy_create(request: web.Request) -> web.Response:
    item = ProxyInput.parse(await body(request))
    toxics = parse_toxics(item)
    coll = collection(request)
    async with coll.lock:
        proxy = await coll.add(item, toxics)
    return json_response(proxy.to_json(), 201)


def parse_toxics(item: ProxyInput, where: str = "") -> list[ToxicSpec] | None:
    if item.toxics is None:
        return None
    specs: list[ToxicSpec] = []
    for i, raw in enumerate(item.toxics):
        try:
            spec = toxic_from_json(raw)
        except ApiError as exc:
            raise ApiError(f"{where}toxics[{i}]: {exc.message}", exc.status) from None
        if any(s.name == spec.name for s in specs):
            raise ApiError(f"{where}toxics[{i}]: toxic already exists", 409)
        specs.append(spec)
    return specs


async def populate(request: web.Request) -> web.Response:
    data = await body(request)
    if not isinstance(data, list):
        raise bad_body("expected a JSON array of proxies")
    coll = collection(request)
    # Validate everything before changing anything (Toxiproxy's two phases).
    items: list[tuple[ProxyInput, list[ToxicSpec] | None]] = []
    names: set[str] = set()
    try:
        for i, raw in enumerate(data):
            item = ProxyInput.parse(raw, where=f"proxy {i + 1}: ")
            if item.name in names:
                raise ApiError(f"duplicate proxy name {item.name!r}", 400)
            names.add(item.name)
            items.append((item, parse_toxics(item, where=f"proxy {i + 1}: ")))
    except ApiError as exc:
        return json_response({**exc.to_json(), "proxies": None}, exc.status)  # Toxiproxy's null
    done = []
    async with coll.lock:
        for item, toxics in items:
            try:
                done.append(await coll.add_or_replace(item, toxics))
            except ApiError as exc:
                return json_response({**exc.to_json(), "proxies": [p.to_json() for p in done]}, exc.status)
    return json_response({"proxies": [p.to_json() for p in done]}, 201)


async def proxy_show(request: web.Request) -> web.Response:
    return json_response(collection(request).get(request.match_info["proxy"]).to_json())


async def proxy_update(request: web.Request) -> web.Response:
    coll = collection(request)
    proxy = coll.get(request.match_info["proxy"])
    data = await body(request)
    if not isinstance(data, dict):
        raise bad_body("expected a JSON object")
    try:
        update = ProxyUpdate.model_validate(data, strict=True)
    except ValidationError as exc:
        raise bad_body(validation_message(exc)) from None
    async with coll.lock:
        await proxy.update(update.listen, update.upstream, update.enabled)
    return json_response(proxy.to_json())


async def proxy_delete(request: web.Request) -> web.Response:
    coll = collection(request)
    async with coll.lock:
        coll.remove(request.match_info["proxy"])
    return no_content()


# -- toxics ------------------------------------------------------------------------------------

async def toxic_index(request: web.Request) -> web.Response:
    proxy = collection(request).get(request.match_info["proxy"])
    return json_response([t.to_json() for t in proxy.toxics.values()])


async def toxic_create(request: web.Request) -> web.Response:
    coll = collection(request)
    proxy = coll.get(request.match_info["proxy"])
    spec = toxic_from_json(await body(request))
    async with coll.lock:
        proxy.add_toxic(spec)
    return json_response(spec.to_json())


async def toxic_show(request: web.Request) -> web.Response:
    proxy = collection(request).get(request.match_info["proxy"])
    return json_response(proxy.get_toxic(request.match_info["toxic"]).to_json())


async def toxic_update(request: web.Request) -> web.Response:
    coll = collection(request)
    proxy = coll.get(request.match_info["proxy"])
    old = proxy.get_toxic(request.match_info["toxic"])
    new = toxic_updated(old, await body(request))
    async with coll.lock:
        proxy.replace_toxic(new)
    return json_response(new.to_json())


async def toxic_delete(request: web.Request) -> web.Response:
    coll = collection(request)
    proxy = coll.get(request.match_info["proxy"])
    async with coll.lock:
        proxy.remove_toxic(request.match_info["toxic"])
    return no_content()


# -- misc --------------------------------------------------------------------------------------

async def reset(request: web.Request) -> web.Response:
    coll = collection(request)
    async with coll.lock:
        await coll.reset()
    return no_content()


async def version(request: web.Request) -> web.Response:
    return json_response({"version": VERSION})


async def openapi(request: web.Request) -> web.Response:
    return json_response(document())


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=exposition(collection(request)), headers={"Content-Type": CONTENT_TYPE})


def make_app(coll: ProxyCollection) -> web.Application:
    app = web.Application(middlewares=[toxics_changed, errors], client_max_size=1 << 20)
    app[COLLECTION] = coll
    r = app.router
    r.add_post("/reset", reset)
    r.add_get("/proxies", proxy_index, allow_head=False)
    r.add_post("/proxies", proxy_create)
    r.add_post("/populate", populate)
    r.add_get("/proxies/{proxy}", proxy_show, allow_head=False)
    r.add_post("/proxies/{proxy}", proxy_update)
    r.add_patch("/proxies/{proxy}", proxy_update)
    r.add_delete("/proxies/{proxy}", proxy_delete)
    r.add_get("/proxies/{proxy}/toxics", toxic_index, allow_head=False)
    r.add_post("/proxies/{proxy}/toxics", toxic_create)
    r.add_get("/proxies/{proxy}/toxics/{toxic}", toxic_show, allow_head=False)
    r.add_post("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_patch("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    r.add_delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete)
    r.add_get("/version", version, allow_head=False)
    r.add_get("/openapi.json", openapi, allow_head=False)
    r.add_get("/metrics", metrics, allow_head=False)
    return app
