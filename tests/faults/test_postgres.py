"""postgres.exhaust_connections against a PostgreSQL 15 of our own (max_connections=10): a new
connection fails with "too many connections" (SQLSTATE 53300) until revert releases the slots."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from tests.conftest import free_port

from chaoslab.errors import FaultError
from chaoslab.faults.postgres import ExhaustParams, PostgresExhaustConnections

from .conftest import revert_elsewhere

BIN = Path("/usr/lib/postgresql/15/bin")


def as_postgres(argv: list[str], stderr: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["runuser", "-u", "postgres", "--", *argv], stdout=subprocess.DEVNULL, stderr=stderr
    )


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    if not (BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed")
    base = Path(tempfile.mkdtemp(prefix="chaoslab-kernel-pg-"))
    os.chmod(base, 0o755)
    data = base / "data"
    shutil.chown(base, "postgres", "postgres")
    init = as_postgres(
        [str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        stderr=subprocess.PIPE,
    )
    assert init.wait(timeout=120) == 0
    port = free_port()
    server = as_postgres(
        [
            str(BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(base),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=10",
            "-c",
            "fsync=off",
        ]
    )
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if count_others(dsn) is not None:
                break
            time.sleep(0.2)
        else:
            pytest.fail("PostgreSQL did not start")
        yield dsn
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if init.stderr:
            init.stderr.close()
        shutil.rmtree(base, ignore_errors=True)


def count_others(dsn: str) -> int | None:
    """Client backends other than ours, or None when the server does not accept us."""

    async def go() -> int:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return int(
                await conn.fetchval(
                    "select count(*) from pg_stat_activity where backend_type = 'client backend' "
                    "and pid <> pg_backend_pid()"
                )
            )
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None


def connect_error(dsn: str) -> BaseException | None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        asyncio.run(go())
    except Exception as exc:
        return exc
    return None


def test_exhaust_connections_and_release(postgres: str, run_id: str) -> None:
    assert connect_error(postgres) is None
    fault = PostgresExhaustConnections(ExhaustParams(dsn=postgres), None, run_id=run_id)
    PostgresExhaustConnections.check()
    fault.inject()
    try:
        error = connect_error(postgres)
        print(
            f"postgres.exhaust_connections: holding {fault.state['held']}; new connection: {error!r}"
        )
        assert isinstance(error, asyncpg.TooManyConnectionsError)
        assert error.sqlstate == "53300"  # too_many_connections
        assert fault.state["held"] == 10
    finally:
        revert_elsewhere(fault)
    assert (
        not psutil.pid_exists(fault.state["hog"]["pid"])
        or psutil.Process(fault.state["hog"]["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    deadline = time.monotonic() + 10
    while count_others(postgres) != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert count_others(postgres) == 0  # no held connection remains


def test_leave_gives_slots_back(postgres: str, run_id: str) -> None:
    fault = PostgresExhaustConnections(ExhaustParams(dsn=postgres, leave=2), None, run_id=run_id)
    fault.inject()
    try:
        assert fault.state["held"] == 8
        assert connect_error(postgres) is None
    finally:
        fault.revert()


def test_unreachable_server_is_a_fault_error(run_id: str) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    fault = PostgresExhaustConnections(ExhaustParams(dsn=dsn, timeout=20), None, run_id=run_id)
    with pytest.raises(FaultError, match="cannot connect"):
        fault.inject()
    fault.revert()
