"""A service whose CPU time goes to one function, for the flamegraph tests.

python hot_service.py PORT
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chaoslab_hot_checksum(n: int) -> int:
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def burn() -> None:
    while True:
        chaoslab_hot_checksum(50_000)


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


threading.Thread(target=burn, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
