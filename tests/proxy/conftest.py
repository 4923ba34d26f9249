from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import ProxyProcess, TcpServer, echo


@pytest.fixture
def proxy_server() -> Iterator[ProxyProcess]:
    server = ProxyProcess()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def echo_server() -> Iterator[TcpServer]:
    server = TcpServer(echo)
    try:
        yield server
    finally:
        server.close()
