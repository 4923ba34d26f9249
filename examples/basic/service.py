"""A tiny HTTP service for the basic example and the core tests.

GET /health, POST {"id": x} -> 201 {"id": x} (kept in memory; a counter when no id), GET /items -> {"ids": [...]}.

    python examples/basic/service.py --port 8081
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    counter = 0
    items: list[object] = []
    lock = threading.Lock()

    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"status": "healthy"})
        elif self.path == "/items":
            with Handler.lock:
                ids = list(Handler.items)
            self._send(200, {"ids": ids})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        # The client may choose the id (as idempotent APIs let it); otherwise a counter is used.
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, {"error": "body is not JSON"})
            return
        with Handler.lock:
            Handler.counter += 1
            item = body.get("id", Handler.counter) if isinstance(body, dict) else Handler.counter
            Handler.items.append(item)
        self._send(201, {"id": item})

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen queue is 5 connections deep. Every request here is a new
    # connection (HTTP/1.0), so at 100 requests/s a busy machine that keeps the accepting thread
    # off the CPU for 50 ms fills it, and the kernel drops the next SYN: that client waits for its
    # SYN to be sent again after 1 s and a probe with a 0.5 s timeout fails while the service is
    # fine. Real servers ask for far more (nginx 511, uvicorn 2048); the kernel caps it at somaxconn.
    request_queue_size = 1024

    def handle_error(self, request: object, client_address: object) -> None:
        # clients that gave up (a probe timing out while we were paused) are not our error
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = Server((args.host, args.port), Handler)
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
