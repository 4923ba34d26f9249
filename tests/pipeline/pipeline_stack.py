"""The streaming pipeline for its tests: a private copy of examples/pipeline/stack.yaml on free
ports (it never meets a stack someone else runs), and readers of what it holds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import httpx
import pytest
from tests.conftest import ROOT, free_ports

from chaoslab.stack import Stack

PIPELINE = ROOT / "examples" / "pipeline"
PORTS = (
    "S3",
    "PG",
    "REDIS",
    "PROXY_API",
    "KAFKA",
    "KAFKA_PROXY",
    "PG_PROXY",
    "REDIS_PROXY",
    "S3_PROXY",
    "PRODUCER",
    "CONSUMER",
    "GATEWAY",
)


def _free_block(size: int) -> int:
    """A base port with ``size`` free ports after it (weed mini needs a block of its own)."""
    for _ in range(200):
        base = random.randrange(30000, 45000)
        try:
            socks = []
            for p in range(base, base + size):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            for s in socks:
                s.close()
            return base
        except OSError:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of ports")


def record(rid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "source": "test",
        "level": "INFO",
        "message": "hello",
        "amount": "12.5000",
        **extra,
    }


@dataclass
class Pipeline:
    stack: Stack | None  # None: the Compose project of compose.yaml (test_pipeline_compose.py)
    ports: dict[str, int]
    token: str
    acked: list[str] = field(default_factory=list)

    @property
    def file(self) -> str:
        assert self.stack is not None
        return self.stack.file

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY']}"

    @property
    def consumer(self) -> str:
        return f"http://127.0.0.1:{self.ports['CONSUMER']}"

    @property
    def proxy_api(self) -> str:
        return f"http://127.0.0.1:{self.ports['PROXY_API']}"

    @property
    def dsn(self) -> str:
        return f"postgresql://pipeline:pipeline@127.0.0.1:{self.ports['PG']}/pipeline"

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['KAFKA_PROXY']}"

    @property
    def s3(self) -> str:
        return f"http://127.0.0.1:{self.ports['S3']}"

    def post(
        self, records: list[dict[str, Any]], concurrency: int = 32
    ) -> list[tuple[str, int, float]]:
        """POST every record; (id, status, seconds) each. Acknowledged ids are remembered."""

        async def run() -> list[tuple[str, int, float]]:
            sem = asyncio.Semaphore(concurrency)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:

                async def one(rec: dict[str, Any]) -> tuple[str, int, float]:
                    async with sem:
                        t = time.perf_counter()
                        try:
                            async with s.post(self.gateway + "/logs", data=json.dumps(rec)) as r:
                                await r.read()
                                return str(rec.get("id")), r.status, time.perf_counter() - t
                        except (aiohttp.ClientError, TimeoutError):
                            return str(rec.get("id")), 0, time.perf_counter() - t

                return list(await asyncio.gather(*(one(r) for r in records)))

        out = asyncio.run(run())
        self.acked += [rid for rid, status, _ in out if status == 201]
        return out

    def placements(self, ids: list[str]) -> dict[str, list[str]]:
        """Where each id is: a list of 'events' / 'dead_letters:<kind>' entries (our own check,
        straight from PostgreSQL, independent of chaoslab's checker)."""

        async def read() -> dict[str, list[str]]:
            conn = await asyncpg.connect(self.dsn)
            try:
                rows = await conn.fetch(
                    "select id, 'events' as place from events where id = any($1::text[]) union all "
                    "select id, 'dead_letters:' || kind from dead_letters where id = any($1::text[])",
                    ids,
                )
            finally:
                await conn.close()
            out: dict[str, list[str]] = {i: [] for i in ids}
            for r in rows:
                out[r["id"]].append(r["place"])
            return out

        return asyncio.run(read())

    def settle(self, ids: list[str], timeout: float = 90.0) -> dict[str, list[str]]:
        """Wait until every id is placed (stored or dead-lettered); the placements then."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                where = self.placements(ids)
            except (OSError, asyncpg.PostgresError):
                where = {i: [] for i in ids}
            if all(where.values()) or time.monotonic() > deadline:
                return where
            time.sleep(0.5)

    def settled(self, prefix: str, wait: float = 60.0) -> tuple[list[str], list[str]]:
        """(events, dead_letters) ids with this prefix once the consumer has drained both topics."""
        deadline = time.monotonic() + wait
        while True:
            try:
                r = httpx.get(
                    f"{self.consumer}/settled", params={"prefix": prefix, "wait": "10"}, timeout=15
                )
                if r.status_code == 200:
                    body = r.json()
                    return list(body["events"]), list(body["dead_letters"])
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the consumer did not settle within {wait}s")
            time.sleep(0.5)

    def proxy(self, name: str, **attrs: Any) -> None:
        httpx.post(f"{self.proxy_api}/proxies/{name}", json=attrs, timeout=5).raise_for_status()

    def consumer_health(self) -> dict[str, Any]:
        return dict(httpx.get(self.consumer + "/health", timeout=2).json())

    def health(self, service: str) -> dict[str, Any]:
        port = self.ports[service.upper()]
        return dict(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json())


def _write_copy(token: str, ports: dict[str, int], base: int, extra: dict[str, str]) -> Any:
    copy = PIPELINE / f".pipelinetest-{token}.yaml"
    values = {f"PIPELINE_{name}_PORT": str(port) for name, port in ports.items()}
    values |= {
        "PIPELINE_STACK_NAME": f"pipelinetest-{token}",
        "PIPELINE_WEED_BASE_PORT": str(base),
        "PIPELINE_DATA_DIR": f".chaoslab/data/pipelinetest-{token}",
        "PIPELINE_PYTHON": sys.executable,
    }
    values |= extra
    text = (PIPELINE / "stack.yaml").read_text()
    copy.write_text(
        re.sub(r"\$\{(PIPELINE_\w+):-([^}]*)\}", lambda m: values.get(m.group(1), m.group(2)), text)
    )
    return copy


@contextlib.contextmanager
def pipeline_stack(**extra: str) -> Iterator[Pipeline]:
    if os.geteuid() != 0:
        pytest.skip("the pipeline stack runs PostgreSQL as the postgres user: needs root")
    try:
        from chaoslab_pipeline.tools import tansu, weed

        tansu(), weed()
    except (ImportError, FileNotFoundError) as exc:
        pytest.skip(f"the pipeline's binaries are missing (scripts/pipeline.sh): {exc}")
    token = secrets.token_hex(3)
    base = _free_block(14)
    ports = dict(zip(PORTS, free_ports(len(PORTS), avoid=range(base, base + 14)), strict=True))
    copy = _write_copy(token, ports, base, extra)
    stack = Stack.load(copy)
    try:
        stack.up(timeout=120)
        yield Pipeline(stack, ports, token)
    finally:
        try:
            stack.down(purge=True)
        finally:
            copy.unlink(missing_ok=True)
            shutil.rmtree(
                PIPELINE / ".chaoslab" / "data" / f"pipelinetest-{token}", ignore_errors=True
            )
