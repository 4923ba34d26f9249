"""A TCP server on PORT and a client that keeps one connection open and writes every 50 ms:
the traffic a partition turns into retransmits.

    python tcp_pair.py PORT
"""

from __future__ import annotations

import socket
import sys
import threading
import time

port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(16)


def serve() -> None:
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def drain(conn: socket.socket) -> None:
    while conn.recv(65536):
        pass


threading.Thread(target=serve, daemon=True).start()
print("ready", flush=True)
while True:
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            c.sendall(b"x" * 100)
            time.sleep(0.05)
    except OSError:
        time.sleep(0.1)
