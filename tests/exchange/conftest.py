"""Fixtures of the exchange tests: real servers from exchange_servers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_servers import PG_BIN, ApiServer, MakeApi, PgServer, RedisServer


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    if os.geteuid() != 0 or not (PG_BIN / "postgres").exists():
        pytest.skip("needs root (to run PostgreSQL as the postgres user) and PostgreSQL 15")
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_up(pg: PgServer) -> PgServer:
    """The session PostgreSQL, restarted if an earlier test left it killed."""
    if not pg.alive:
        pg.start()
    return pg


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="chaoslab-exchange-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(workdir)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def api_factory(workdir: Path, pg_up: PgServer, redis_server: RedisServer) -> Iterator[MakeApi]:
    """Returns (api, db name); the API is a child process on a fresh database."""
    started: list[ApiServer] = []

    def make(*extra: str) -> tuple[ApiServer, str]:
        db = pg_up.create_database()
        api = ApiServer(workdir, pg_up.dsn(db), redis_server.url, *extra)
        api.start()
        started.append(api)
        return api, db

    yield make
    for api in started:
        api.kill()
