"""HTTP surface of the trading API (FastAPI)."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.types import Receive, Scope, Send

from chaoslab_exchange.config import Settings
from chaoslab_exchange.engine import OrderType, Side
from chaoslab_exchange.resilience import DependencyError
from chaoslab_exchange.service import NotDurable, OrderService, Overloaded, order_view, trade_view

SYMBOL = r"^[A-Z0-9]{2,16}$"
ORDER_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# numeric(…) in PostgreSQL takes any of these; the bounds keep the book's arithmetic sane.
Amount = Annotated[Decimal, Field(gt=0, lt=Decimal(10) ** 12, decimal_places=8, allow_inf_nan=False)]


class OrderRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={
        "example": {"symbol": "BTCUSD", "side": "BUY", "type": "MARKET", "quantity": 1.0}
    })
    symbol: str = Field(pattern=SYMBOL, examples=["BTCUSD"])
    side: Side
    type: OrderType
    quantity: Amount
    price: Amount | None = None
    client_order_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="Idempotency key: a retried request returns the original order.",
    )

    @model_validator(mode="after")
    def _price_matches_type(self) -> OrderRequest:
        if self.type is OrderType.LIMIT and self.price is None:
            raise ValueError("a LIMIT order needs a price")
        if self.type is OrderType.MARKET and self.price is not None:
            raise ValueError("a MARKET order takes no price")
        return self


class Fill(BaseModel):
    trade_id: str
    symbol: str
    price: float
    quantity: float
    buy_order_id: str
    sell_order_id: str
    taker_order_id: str


class OrderResponse(BaseModel):
    order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    quantity: float
    price: float | None
    status: str = Field(description="NEW, PARTIALLY_FILLED, FILLED or CANCELLED")
    filled_quantity: float
    durability: str | None = Field(
        default=None, description="committed (in PostgreSQL) or accepted_queued (fsynced to the spool)"
    )
    fills: list[Fill] | None = None


class Health(BaseModel):
    status: str
    database: str
    cache: str
    spool_depth: int
    breakers: dict[str, str]
    book: str
    trades: str = Field(description="current, behind (waiting for PostgreSQL) or unverified (partial book)")
    inflight: int
    error: str | None = Field(None, description="Why the API is unhealthy, if it is.")


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def _no_telemetry() -> dict[str, Any]:
    """Recent FastAPI wraps every request in OpenTelemetry spans and metrics; we export
    Prometheus metrics ourselves and the spans cost a fifth of the per-order CPU."""
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False,
                              "operation_spans": False}}
    return {}


class OrdersFastPath:
    """ASGI front: ``POST /orders`` goes straight to the order handler, everything else
    to FastAPI. The framework's middleware and routing stack cost more CPU per order
    than matching and persisting it; the FastAPI route stays for OpenAPI and shares the
    same handler, so behaviour is identical either way."""

    MAX_BODY = 64 * 1024

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.handle: Callable[[bytes], Awaitable[tuple[int, dict[str, str], bytes]]] = (
            app.state.handle_order
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/orders":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        headers: dict[str, str]
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.MAX_BODY:
                status, headers, payload = 413, {}, _dumps({"detail": "request body too large"})
                break
            if not message.get("more_body", False):
                status, headers, payload = await self.handle(bytes(body))
                break
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})


def create_asgi(settings: Settings) -> OrdersFastPath:
    return OrdersFastPath(create_app(settings))


def create_app(settings: Settings) -> FastAPI:
    service = OrderService(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app = FastAPI(
        title="Simulated exchange trading API", version="1.0", lifespan=lifespan,
        **_no_telemetry(),
    )
    app.state.service = service

    async def handle_order(raw: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            req = OrderRequest.model_validate_json(raw)
        except ValidationError as e:
            # FastAPI's 422 shape: {"detail": [{type, loc, msg, input}, ...]}
            errors = e.errors(include_url=False, include_context=False)
            for err in errors:
                err["loc"] = ("body", *err["loc"])
            return 422, {}, _dumps({"detail": errors})
        try:
            ack = await service.submit(
                req.symbol, req.side, req.type, req.quantity, req.price, req.client_order_id
            )
        except Overloaded:
            return 429, {"Retry-After": "1"}, _dumps({"detail": "too many orders in flight, retry later"})
        except NotDurable as e:
            return 503, {"Retry-After": "1"}, _dumps({"detail": str(e)})
        return (201 if ack.created else 200), {}, _dumps(ack.body)

    app.state.handle_order = handle_order

    @app.post(
        "/orders", status_code=201, response_model=OrderResponse,
        responses={200: {"model": OrderResponse, "description": "client_order_id retry"},
                   422: {"description": "invalid order, FastAPI validation error shape"},
                   429: {"description": "overloaded, see Retry-After"},
                   503: {"description": "not stored"}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/OrderRequest"}}}}},
    )
    async def create_order(request: Request) -> Any:
        status, headers, payload = await handle_order(await request.body())
        return Response(payload, status_code=status, headers=headers, media_type="application/json")

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            request_schema = OrderRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request_schema.pop("$defs", {}))
            components["OrderRequest"] = request_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/orders/{order_id}", response_model=OrderResponse, responses={404: {}, 503: {}})
    async def get_order(order_id: Annotated[str, Path(pattern=ORDER_ID)]) -> Any:
        # Read path: Redis cache, then our own state (rebuilt from PostgreSQL at start),
        # then PostgreSQL itself.
        try:
            cached = await service.cache.get_order(order_id)
        except DependencyError:
            cached = None
        if cached is not None:
            service.metrics.cache_hits.inc()
            return JSONResponse(cached)
        service.metrics.cache_misses.inc()
        order = service.engine.orders.get(order_id)
        if order is not None:
            return JSONResponse(order_view(order))
        try:
            row = await service.store.get_order(order_id)
        except DependencyError:
            raise HTTPException(503, "order not in memory and PostgreSQL unavailable") from None
        if row is None:
            raise HTTPException(404, f"no order {order_id}")
        filled = float(row.pop("filled"))
        row.pop("seq", None)
        row.pop("created_at", None)
        return JSONResponse({
            **row, "quantity": float(row["quantity"]),
            "price": None if row["price"] is None else float(row["price"]),
            "status": "FILLED" if filled >= float(row["quantity"]) else "UNKNOWN",
            "filled_quantity": filled,
        })

    @app.get("/orderbook/{symbol}")
    async def orderbook(
        symbol: Annotated[str, Path(pattern=SYMBOL)],
        depth: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        book = service.engine.book(symbol).depth(depth) if symbol in service.engine.books else {
            "bids": [], "asks": []
        }
        return {
            "symbol": symbol,
            **{
                side: [{"price": float(p), "quantity": float(q), "orders": n} for p, q, n in levels]
                for side, levels in book.items()
            },
        }

    @app.get("/trades")
    async def trades(
        symbol: Annotated[str | None, Query(pattern=SYMBOL)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        out = []
        for t in reversed(service.engine.recent_trades):
            if symbol is None or t.symbol == symbol:
                out.append(trade_view(t))
                if len(out) >= limit:
                    break
        return out

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    async def health() -> Any:
        body = service.health()
        return JSONResponse(body, status_code=503 if body["status"] == "unhealthy" else 200)

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
