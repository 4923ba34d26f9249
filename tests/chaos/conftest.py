"""The reference exchange for the chaos tests: a private copy of examples/exchange/stack.yaml on
free ports (so it never meets a stack someone else runs), up for the session."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from tests.conftest import ROOT, free_ports

from chaoslab.stack import Stack

EXCHANGE = ROOT / "examples" / "exchange"
PORTS = (
    "PG",
    "REDIS",
    "PROXY_API",
    "PG_PROXY",
    "REDIS_PROXY",
    "API",
    "NGINX",
    "MARKET",
    "ORDERFLOW",
    "EXPORTER",
    "PROMETHEUS",
)


@dataclass
class Exchange:
    stack: Stack
    ports: dict[str, int]

    @property
    def file(self) -> str:
        return self.stack.file

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['API']}"

    @property
    def dsn(self) -> str:
        return f"postgresql://trader:trader@127.0.0.1:{self.ports['PG']}/exchange"

    def order(self, **extra: Any) -> dict[str, Any]:
        return {
            "symbol": "BTCUSD",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": 1,
            "price": 100,
            "client_order_id": "{{key}}",
            **extra,
        }


@pytest.fixture(scope="package")  # down as soon as tests/chaos is done
def chaos_stack() -> Iterator[Exchange]:
    if os.geteuid() != 0:
        pytest.skip("the exchange stack runs PostgreSQL as the postgres user: needs root")
    token = secrets.token_hex(3)
    copy = EXCHANGE / f".chaostest-{token}.yaml"
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    values = {f"EXCHANGE_{name}_PORT": str(port) for name, port in ports.items()}
    values["EXCHANGE_STACK_NAME"] = f"chaostest-{token}"
    values["EXCHANGE_SPOOL_DIR"] = f".chaoslab/spool/chaostest-{token}"
    values["EXCHANGE_ORDERFLOW_RATE"] = "5"
    # the values are written into the copy itself: nothing leaks into this process's environment
    # (a later test that runs the default exchange must not inherit these ports)
    text = (EXCHANGE / "stack.yaml").read_text()
    copy.write_text(
        re.sub(r"\$\{(EXCHANGE_\w+):-([^}]*)\}", lambda m: values.get(m.group(1), m.group(2)), text)
    )
    stack = Stack.load(copy)
    try:
        stack.up(timeout=120)
        yield Exchange(stack, ports)
    finally:
        try:
            stack.down(purge=True)
        finally:
            copy.unlink(missing_ok=True)
            shutil.rmtree(
                EXCHANGE / ".chaoslab" / "spool" / f"chaostest-{token}", ignore_errors=True
            )
