"""load.http.retry_acked against a real HTTP server: retries re-send an acknowledged body, and an
answer naming a new id is recorded as a new acknowledged write with the error saying so."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chaoslab.experiment.workload import HttpLoad
from chaoslab.load.driver import Result
from chaoslab.load.http import HttpDriver


class _Orders(BaseHTTPRequestHandler):
    seen: dict[str, str] = {}
    forgetful = False  # True: every request is a new order (the issue 16 bug)
    bodies: list[str] = []

    def do_POST(self) -> None:
        key = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["client_order_id"]
        type(self).bodies.append(key)
        if self.forgetful or key not in self.seen:
            self.seen[key] = str(uuid.uuid4())
        out = json.dumps({"order_id": self.seen[key]}).encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    _Orders.seen, _Orders.bodies, _Orders.forgetful = {}, [], False
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Orders)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/orders"
    srv.shutdown()
    srv.server_close()


async def _drive(url: str, n: int) -> list[Result]:
    spec = HttpLoad.model_validate(
        {
            "url": url,
            "method": "POST",
            "body": {"client_order_id": "{{key}}"},
            "ack": {"status": [200, 201], "id": "$.order_id"},
            "retry_acked": 0.25,
        }
    )
    driver = HttpDriver(spec, "r")
    await driver.start()
    results: list[Result] = []
    try:
        for seq in range(n):
            done = asyncio.get_running_loop().create_future()
            driver.submit(seq, f"r-{seq}", done.set_result)
            results.append(await asyncio.wait_for(done, 10))
    finally:
        await driver.close()
    return results


def test_retries_resend_acknowledged_bodies_and_pass_when_the_id_is_the_original(
    server: str,
) -> None:
    results = asyncio.run(_drive(server, 40))
    assert all(r.ok for r in results)
    retries = [r for r in results if not r.ack]
    assert len(retries) == 10  # a quarter of 40, spread evenly
    assert len(_Orders.bodies) == 40 and len(set(_Orders.bodies)) == 30  # 10 bodies sent twice


def test_a_retry_answered_with_a_new_id_is_a_new_acknowledged_write(server: str) -> None:
    _Orders.forgetful = True
    results = asyncio.run(_drive(server, 40))
    wrong = [r for r in results if r.error and "answered id" in r.error]
    assert len(wrong) == 10
    assert all(r.ack and r.ack_id for r in wrong)
