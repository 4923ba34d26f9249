"""The trading API against real PostgreSQL and Redis: the contract of each endpoint."""

from __future__ import annotations

import signal

import httpx
from exchange_load import wait_for
from exchange_servers import MakeApi, PgServer


def test_orders_match_persist_and_read_back(api_factory: MakeApi, pg_up: PgServer) -> None:
    api, db = api_factory()
    with httpx.Client(base_url=api.url, timeout=10) as c:
        sell = c.post(
            "/orders",
            json={
                "symbol": "BTCUSD",
                "side": "SELL",
                "type": "LIMIT",
                "quantity": 2,
                "price": 100.5,
            },
        )
        assert sell.status_code == 201, sell.text
        assert sell.json()["status"] == "NEW" and sell.json()["durability"] == "committed"
        buy = c.post(
            "/orders", json={"symbol": "BTCUSD", "side": "BUY", "type": "MARKET", "quantity": 1.5}
        )
        assert buy.status_code == 201
        body = buy.json()
        assert body["status"] == "FILLED" and body["filled_quantity"] == 1.5
        assert [(f["price"], f["quantity"]) for f in body["fills"]] == [(100.5, 1.5)]
        book = c.get("/orderbook/BTCUSD").json()
        assert book["asks"] == [{"price": 100.5, "quantity": 0.5, "orders": 1}]
        assert c.get("/trades", params={"symbol": "BTCUSD"}).json()[0]["quantity"] == 1.5
        # Read back: the maker's state was updated by the later fill (through the cache,
        # published by a task: waited for, within a bound that only catches "never").
        maker = f"/orders/{sell.json()['order_id']}"
        wait_for(lambda: c.get(maker).json()["filled_quantity"] == 1.5, 30, "the maker's fill")
        assert c.get(maker).json()["status"] == "PARTIALLY_FILLED"
        assert c.get("/orders/00000000-0000-4000-8000-000000000000").status_code == 404
        bad = c.post(
            "/orders", json={"symbol": "BTCUSD", "side": "BUY", "type": "LIMIT", "quantity": 1}
        )
        assert bad.status_code == 422 and "needs a price" in bad.text
        # Its pings have 0.5-2 s budgets: at a load of 20 one can miss, and /health says so.
        wait_for(lambda: c.get("/health").json()["status"] == "healthy", 30, "healthy")
        metrics = c.get("/metrics").text
        assert 'orders_total{status="FILLED"} 1.0' in metrics
        assert "order_processing_duration_seconds_bucket" in metrics
        assert "database_connections_active" in metrics
    rows = pg_up.query(db, "SELECT order_id FROM orders")
    assert {r["order_id"] for r in rows} == {sell.json()["order_id"], buy.json()["order_id"]}
    assert pg_up.query(db, "SELECT count(*) AS n FROM trades")[0]["n"] in (
        0,
        1,
    )  # trades lag a batch


def test_client_order_id_is_idempotent(api_factory: MakeApi, pg_up: PgServer) -> None:
    api, db = api_factory()
    order = {
        "symbol": "ETHUSD",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": 1,
        "price": 10,
        "client_order_id": "retry-me-1",
    }
    with httpx.Client(base_url=api.url, timeout=10) as c:
        first = c.post("/orders", json=order)
        again = c.post("/orders", json=order)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["order_id"] == again.json()["order_id"]
    # And after a restart, from the rebuilt state.
    api.kill()
    api.start()
    with httpx.Client(base_url=api.url, timeout=10) as c:
        third = c.post("/orders", json=order)
    assert third.status_code == 200 and third.json()["order_id"] == first.json()["order_id"]
    assert pg_up.query(db, "SELECT count(*) AS n FROM orders")[0]["n"] == 1


def test_book_is_rebuilt_from_postgres_after_restart(api_factory: MakeApi) -> None:
    api, _ = api_factory()
    with httpx.Client(base_url=api.url, timeout=10) as c:
        for price in (101, 102, 102):
            assert (
                c.post(
                    "/orders",
                    json={
                        "symbol": "BTCUSD",
                        "side": "SELL",
                        "type": "LIMIT",
                        "quantity": 1,
                        "price": price,
                    },
                ).status_code
                == 201
            )
        before = c.get("/orderbook/BTCUSD").json()
    # uvicorn re-raises the SIGTERM after its graceful shutdown, hence -15.
    assert api.terminate(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "stopped cleanly; 0 orders left in the spool" in (api.base / "api.log").read_text()
    api.start()
    with httpx.Client(base_url=api.url, timeout=10) as c:
        assert c.get("/orderbook/BTCUSD").json() == before


def test_admission_is_bounded(api_factory: MakeApi) -> None:
    api, _ = api_factory("--max-inflight", "1")
    import asyncio

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as c:
            order = {"symbol": "BTCUSD", "side": "BUY", "type": "MARKET", "quantity": 1}
            return await asyncio.gather(*(c.post("/orders", json=order) for _ in range(40)))

    codes = [r.status_code for r in asyncio.run(burst())]
    assert set(codes) <= {201, 429} and 201 in codes and 429 in codes
    rejected = next(r for r in asyncio.run(burst()) if r.status_code == 429)
    assert rejected.headers["Retry-After"] == "1"
