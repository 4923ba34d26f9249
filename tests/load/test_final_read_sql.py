"""The SQL final read against a real PostgreSQL 15 started by this test (as the postgres user)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoslab.analysis import analyze
from chaoslab.experiment.workload import VerifySpec
from chaoslab.runner.finalread import final_read

PG_BIN = Path("/usr/lib/postgresql/15/bin")

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or os.geteuid() != 0,
    reason="needs PostgreSQL 15 binaries and root",
)


def _as_postgres(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, check=True
    )


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="chaoslab-h3-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc: subprocess.Popen[bytes] | None = None
    try:
        _as_postgres(
            str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        proc = subprocess.Popen(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={root}",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (
                subprocess.run(
                    [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                    capture_output=True,
                ).returncode
                == 0
            ):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("postgres did not start")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if proc is not None:
            proc.terminate()  # runuser forwards SIGTERM: a smart shutdown
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def test_sql_final_read_selects_this_runs_writes(postgres: str, tmp_path: Path) -> None:
    import asyncpg

    async def prepare() -> None:
        conn = await asyncpg.connect(postgres)
        try:
            await conn.execute("create table orders (client_id text)")
            # r7 is this run; r7-1 was acknowledged but lost, r7-3 stored twice; other runs' rows are ignored
            await conn.executemany(
                "insert into orders values ($1)",
                [("r7-0",), ("r7-2",), ("r7-3",), ("r7-3",), ("old-1",)],
            )
        finally:
            await conn.close()

    asyncio.run(prepare())
    lines = [{"type": "load", "run": "r7"}] + [
        {
            "id": i,
            "key": f"r7-{i}",
            "t_scheduled": i / 10,
            "t_sent": i / 10,
            "t_done": i / 10 + 0.01,
            "outcome": "ok",
            "status": 201,
            "latency": 0.01,
            "ack": True,
        }
        for i in range(4)
    ]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (tmp_path / "journal.jsonl").write_text('{"type": "phase", "t": 0, "name": "baseline"}\n')
    spec = VerifySpec.model_validate(
        {
            "sql": {
                "dsn": postgres,
                "query": "select client_id from orders where client_id like '{{run}}-%'",
            }
        }
    )
    asyncio.run(final_read(spec, tmp_path))
    verify = json.loads((tmp_path / "verify.json").read_text())
    assert verify["ok"] and sorted(verify["ids"]) == ["r7-0", "r7-2", "r7-3", "r7-3"]
    loss = analyze(tmp_path)["data_loss"]
    assert loss["lost"] == ["r7-1"] and loss["duplicates"] == ["r7-3"] and loss["unexpected"] == []

    bad = VerifySpec.model_validate(
        {"sql": {"dsn": postgres, "query": "select nope from missing"}, "deadline": "1s"}
    )
    asyncio.run(final_read(bad, tmp_path))
    verify = json.loads((tmp_path / "verify.json").read_text())
    assert verify["ok"] is False and "missing" in verify["error"]
    assert analyze(tmp_path)["data_loss"]["status"] == "unknown"
