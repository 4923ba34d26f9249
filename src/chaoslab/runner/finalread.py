"""The final read (``verify:``): what the system holds after recovery, written to verify.json.

Data collection, so the runner's last act before it closes the journal; the analysis reads
verify.json like any other file of the run.

Retried until ``spec.deadline``. If no attempt succeeds, verify.json says ``ok: false`` and the
data-loss result is UNKNOWN, never "0 lost". Queries and URLs may use ``{{run}}``, the load
generator's run token (the prefix of every ``{{key}}``), to read back only this run's writes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path
from typing import Any

import aiohttp

from .. import jsonpath
from ..experiment.workload import HttpRead, SqlRead, VerifySpec
from ..journal import HISTORY, VERIFY, read_lines, write_id, write_json
from ..load.python import import_callable

_RETRY_EVERY = 1.0
_ATTEMPT_TIMEOUT = 10.0


def _history(run_dir: Path) -> tuple[str, list[str]]:
    """The run token and the ids of every write that was sent."""
    token, ids = "", []
    for rec in read_lines(run_dir / HISTORY):
        if rec.get("type") == "load":
            token = str(rec.get("run", ""))
        elif "t_scheduled" in rec and rec.get("t_sent") is not None:
            ids.append(write_id(rec))
    return token, ids


def _sub(text: str, run: str) -> str:
    return text.replace("{{run}}", run).replace("{{ run }}", run)


def ids_at(data: Any, path: str | None) -> list[Any]:
    """Values at a JSON path; ``[*]`` fans out over a list (``$.orders[*].id``)."""
    if path is None:
        if not isinstance(data, list):
            raise ValueError("the response is not a JSON list (set verify.http.ids to a JSON path)")
        return data
    head, star, rest = path.partition("[*]")
    found = jsonpath.get(data, head)
    if not star:
        if not isinstance(found, list):
            raise ValueError(f"{path} is not a list")
        return found
    if not isinstance(found, list):
        raise ValueError(f"{head} is not a list")
    return [ids_at(item, "$" + rest) if "[*]" in rest else jsonpath.get(item, "$" + rest) for item in found]


async def _sql(spec: SqlRead, run: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(spec.dsn, timeout=_ATTEMPT_TIMEOUT)
    try:
        rows = await conn.fetch(_sub(spec.query, run))
    finally:
        await conn.close()
    return [row[0] for row in rows]


async def _http(spec: HttpRead, run: str, attempted: list[str]) -> list[Any]:
    timeout = aiohttp.ClientTimeout(total=_ATTEMPT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout, headers=spec.headers) as session:
        if "{{id}}" in spec.url:
            return await _http_each(session, _sub(spec.url, run), attempted)
        async with session.get(_sub(spec.url, run)) as resp:
            if resp.status != 200:
                raise ValueError(f"GET {spec.url}: HTTP {resp.status}")
            return ids_at(await resp.json(content_type=None), spec.ids)


async def _http_each(session: aiohttp.ClientSession, url: str, attempted: list[str]) -> list[Any]:
    sem = asyncio.Semaphore(32)

    async def one(i: str) -> str | None:
        async with sem, session.get(url.replace("{{id}}", i)) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise ValueError(f"GET {url}: HTTP {resp.status} for id {i}")
            return i

    found = await asyncio.gather(*(one(i) for i in dict.fromkeys(attempted)))
    return [i for i in found if i is not None]


async def _python(ref: str, run: str, attempted: list[str]) -> list[Any]:
    fn = import_callable(ref)
    ctx = {"run": run, "attempted": attempted}
    out = fn(ctx) if not inspect.iscoroutinefunction(fn) else await fn(ctx)
    if inspect.isawaitable(out):
        out = await out
    return list(out)


async def _attempt(spec: VerifySpec, run: str, attempted: list[str]) -> list[Any]:
    if spec.sql is not None:
        return await _sql(spec.sql, run)
    if spec.http is not None:
        return await _http(spec.http, run, attempted)
    assert spec.python is not None
    return await _python(spec.python, run, attempted)


async def _read_dead_letters(spec: SqlRead, run: str, left: float) -> tuple[list[Any] | None, str | None]:
    """The system's dead-letter ids (``verify.dead_letters``), retried like the final read."""
    started = time.monotonic()
    error = "no attempt was made"
    while True:
        try:
            return await asyncio.wait_for(_sql(spec, run), _ATTEMPT_TIMEOUT), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}".strip()
        if time.monotonic() - started + _RETRY_EVERY > max(left, _RETRY_EVERY):
            return None, error
        await asyncio.sleep(_RETRY_EVERY)


INVARIANT_ROWS = 20


async def _read_invariants(spec: VerifySpec, run: str, started: float) -> dict[str, Any]:
    """Each invariant query's violating rows (the first column, at most INVARIANT_ROWS kept)."""
    out: dict[str, Any] = {}
    for name, query in spec.invariants.items():
        rows, error = await _read_dead_letters(query, run, spec.deadline - (time.monotonic() - started))
        out[name] = {
            "violations": None if rows is None else len(rows),
            "rows": None if rows is None else [str(r) for r in rows[:INVARIANT_ROWS]],
            "error": error,
        }
    return out


async def final_read(spec: VerifySpec, run_dir: Path) -> None:
    """Read the system's final state, retrying until the deadline; always writes verify.json."""
    run, attempted = _history(run_dir)
    started = time.monotonic()
    attempts = 0
    error = "no attempt was made"
    ids: list[Any] | None = None
    while True:
        attempts += 1
        try:
            left = spec.deadline - (time.monotonic() - started)
            ids = await asyncio.wait_for(_attempt(spec, run, attempted), max(1.0, min(_ATTEMPT_TIMEOUT, left)))
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}".strip()
        if time.monotonic() - started + _RETRY_EVERY > spec.deadline:
            break
        await asyncio.sleep(_RETRY_EVERY)
    dead: list[Any] | None = None
    dead_error: str | None = None
    if ids is not None and spec.dead_letters is not None:
        dead, dead_error = await _read_dead_letters(spec.dead_letters, run, spec.deadline - (time.monotonic() - started))
    record: dict[str, Any] = {
        "ok": ids is not None,
        "ids": [str(i) for i in ids] if ids is not None else None,
        "attempts": attempts,
        "error": None if ids is not None else error,
        "duration": round(time.monotonic() - started, 3),
    }
    if spec.dead_letters is not None:
        record["dead_letters"] = [str(i) for i in dead] if dead is not None else None
        record["dead_letters_error"] = dead_error
    if spec.invariants:
        record["invariants"] = await _read_invariants(spec, run, started)
    write_json(run_dir, VERIFY, record)
