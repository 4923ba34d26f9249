"""The console's routes (Starlette): pages, the live stream, the JSON the pages poll, the actions.

Reads go to the run directories through the index (index.py) and rundir.py; every change goes
through actions.py; every request first passes the guard (guard.py, with the rules of security.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..journal import EXPERIMENT
from ..runner import halt as halt_flag
from ..runner.ledger import ledger_root
from ..runner.ledger import runs as ledger_runs
from . import actions, catalog, live, machine, pages, rundir, trend
from .guard import GuardMiddleware, refuse
from .index import RunIndex, RunRow
from .security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Guard, Refused, inside, safe_name

log = logging.getLogger("chaoslab.serve")
STATIC = Path(__file__).parent / "static"
DIED = "runner died"


@dataclass
class Console:
    runs_dir: Path
    experiments_dir: Path | None
    guard: Guard
    variables: dict[str, str] = field(default_factory=dict)
    ledger_dir: Path | None = None

    def __post_init__(self) -> None:
        self.index = RunIndex(self.runs_dir)
        self.launcher = actions.Launcher(self.runs_dir, self.variables)
        self.doctor = machine.Doctor()

    def ledger(self) -> Path:
        return self.ledger_dir or ledger_root()


# -- helpers -----------------------------------------------------------------------------------

def _console(req: Request) -> Console:
    c: Console = req.app.state.console
    return c


def _csrf(req: Request) -> str:
    session = req.scope.get("state", {}).get("session")
    return _console(req).guard.csrf_for(session) if session else ""


def _page(req: Request, title: str, body: str, nav: str = "") -> HTMLResponse:
    c = _console(req)
    return HTMLResponse(pages.layout(title, body, csrf=_csrf(req), read_only=c.guard.read_only, nav=nav))


async def _form(req: Request) -> dict[str, str]:
    """An urlencoded form (the only kind the pages send), without python-multipart."""
    body = await req.body()
    if len(body) > 64 * 1024:
        raise Refused(413, "form too large")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


async def _action(req: Request) -> dict[str, str]:
    """The form of a POST, once its CSRF token matched the session's."""
    fields = await _form(req)
    state = req.scope.get("state", {})
    if not state.get("by_token"):
        given = fields.get(CSRF_FIELD) or req.headers.get(CSRF_HEADER)
        if not _console(req).guard.csrf_ok(state.get("session"), given):
            raise Refused(403, "missing or wrong CSRF token: reload the page and try again")
    return fields


def _run_dir(c: Console, run_id: str) -> Path:
    """The run's directory: found through the index (a suite's runs sit one level down), and
    checked to be inside the runs directory all the same."""
    safe_name(run_id)
    row = c.index.get(run_id)
    if row is None:
        c.index.refresh()
        row = c.index.get(run_id)
    if row is None:
        raise Refused(404, f"no such run: {run_id!r}")
    d = inside(c.runs_dir, row.path, "run")
    if not d.is_dir():
        raise Refused(404, f"no such run: {run_id!r}")
    return d


def _ledger_entries(c: Console, run_id: str | None = None) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    entries: list[dict[str, Any]] = []
    alive: dict[str, bool] = {}
    for r in ledger_runs(c.ledger()):
        if run_id is not None and r.run_id != run_id:
            continue
        alive[r.run_id] = r.runner_alive()
        for e in r.entries():
            entries.append({**e, "run_id": e.get("run_id") or r.run_id})
    return entries, alive


# -- pages -------------------------------------------------------------------------------------

async def home(req: Request) -> Response:
    return RedirectResponse("/runs", 303)


def _filters(req: Request) -> dict[str, str]:
    return {k: req.query_params[k][:200] for k in ("experiment", "outcome", "q") if req.query_params.get(k)}


PAGE = 500


def _page_no(req: Request) -> int:
    try:
        return max(0, int(req.query_params.get("page", "0")))
    except ValueError:
        return 0


def _list_runs(c: Console, q: dict[str, str], page: int = 0) -> tuple[list[Any], float, int]:
    """The page's rows, the time it took, and the index's seq they are as of (read before the
    query: a row written meanwhile comes again on the stream, never is missed)."""
    start = time.perf_counter()
    c.index.refresh()
    seq = c.index.seq
    rows = c.index.runs(title=q.get("experiment"), outcome=q.get("outcome"), text=q.get("q"),
                        limit=PAGE + 1, offset=page * PAGE)
    for r in rows:
        _check_runner(r)
    return rows, (time.perf_counter() - start) * 1000, seq


#: How often the Runs page's stream looks at the runs directory (one refresh is shared by every
#: watching page): a listing and a stat of each running run, a few ms even over 1,000 runs.
RUNS_POLL = 0.5


def _runs_update(c: Console, q: dict[str, str], since: int, died: set[str]) -> tuple[int, str] | None:
    """The SSE event of what changed after ``since``: rows to put (new, or a phase, a verdict)
    and rows to drop (removed, or no longer matching the filters); None when nothing did."""
    c.index.refresh(min_interval=RUNS_POLL / 2)
    seq = c.index.seq
    if since > seq:  # a page older than this index (rebuilt since): every row again
        since = 0
    title, outcome, text = q.get("experiment"), q.get("outcome"), q.get("q")
    rows = c.index.runs(title=title, outcome=outcome, text=text, since=since, limit=PAGE) if seq > since else []
    put = {r.run_id for r in rows}
    drop = [i for i in c.index.changed(since) if i not in put] if seq > since else []
    # a runner that died changes no file: its rows are checked here, and sent once
    if outcome in (None, "running"):
        for r in c.index.runs(title=title, outcome="running", text=text, limit=PAGE):
            if r.run_id in put or r.run_id in died:
                continue
            _check_runner(r)
            if r.phase == DIED:
                died.add(r.run_id)
                rows.append(r)
    if not rows and not drop:
        return None
    for r in rows:
        if r.run_id in put:
            _check_runner(r)
            if r.phase == DIED:
                died.add(r.run_id)
    data = {"seq": seq, "drop": drop,
            "rows": [{"run_id": r.run_id, "started_at": r.started_at, "html": pages.run_row(r)} for r in rows]}
    return seq, f"id: {seq}\ndata: {json.dumps(data)}\n\n"


def _check_runner(row: RunRow) -> None:
    """A run without a summary is running only while its runner lives: one killed (SIGKILL, OOM,
    power) says so instead of showing its last phase for ever."""
    if row.running and row.pid is not None and not rundir.runner_alive(row.pid, row.started_at):
        row.phase = DIED


async def runs_page(req: Request) -> Response:
    start = time.perf_counter()
    c = _console(req)
    q = _filters(req)
    page = _page_no(req)
    rows, ms, seq = await asyncio.to_thread(_list_runs, c, q, page)
    titles = await asyncio.to_thread(c.index.titles)
    resp = _page(req, "Runs", pages.runs_page(rows[:PAGE], titles, q, ms, page=page, more=len(rows) > PAGE,
                                              total=c.index.count(), seq=seq), "runs")
    # what bench/console.py reads: the index's part and the whole handler's
    resp.headers["server-timing"] = f"index;dur={ms:.1f}, total;dur={(time.perf_counter() - start) * 1000:.1f}"
    return resp


async def runs_api(req: Request) -> Response:
    c = _console(req)
    rows, ms, seq = await asyncio.to_thread(_list_runs, c, _filters(req), _page_no(req))
    return JSONResponse({"runs": [dict(r.as_dict(), html=pages.run_row(r)) for r in rows[:PAGE]],
                         "more": len(rows) > PAGE, "server_ms": ms, "seq": seq})


async def runs_stream(req: Request) -> Response:
    """The Runs page's rows as they change, by server-sent events: the id is the index's seq, so
    a reconnecting page (``Last-Event-ID``) gets what changed while it was away, and nothing is
    read again but the running runs' new journal lines (the index's refresh)."""
    c = _console(req)
    q = _filters(req)
    since = live.parse_offset(req.headers.get("last-event-id") or req.query_params.get("from"))

    async def body() -> AsyncIterator[str]:
        nonlocal since
        yield "retry: 1000\n\n"
        died: set[str] = set()
        quiet = 0.0
        while not await req.is_disconnected():
            update = await asyncio.to_thread(_runs_update, c, q, since, died)
            if update is not None:
                since, text = update
                quiet = 0.0
                yield text
            elif quiet >= live.KEEPALIVE:
                quiet = 0.0
                yield ": keepalive\n\n"
            await asyncio.sleep(RUNS_POLL)
            quiet += RUNS_POLL

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def run_page(req: Request) -> Response:
    c = _console(req)
    run_id = req.path_params["run_id"]
    d = _run_dir(c, run_id)
    await asyncio.to_thread(c.index.refresh)
    row = c.index.get(run_id)
    if row is None:
        raise Refused(404, f"no such run: {run_id!r}")
    _check_runner(row)
    downloads = [n for n in rundir.DOWNLOADS if (d / n).is_file()]
    body = pages.run_page(row, csrf=_csrf(req), read_only=c.guard.read_only, downloads=downloads,
                          report=(d / "report.html").is_file(), live=row.running,
                          metrics=rundir.metric_probes(rundir.read_json(d / EXPERIMENT) or {}))
    return _page(req, row.title, body, "runs")


async def run_state(req: Request) -> Response:
    """What the run page polls: the faults in force from the ledger, checked against the runner
    being alive, beside the phase from the journal."""
    c = _console(req)
    run_id = req.path_params["run_id"]
    _run_dir(c, run_id)
    await asyncio.to_thread(c.index.refresh)
    row = c.index.get(run_id)
    entries, alive = await asyncio.to_thread(_ledger_entries, c, run_id)
    runner = rundir.runner_alive(row.pid, row.started_at) if row and row.running else False
    if row is not None:
        _check_runner(row)
    return JSONResponse({
        "phase": row.phase if row else None, "outcome": row.outcome if row else None,
        "runner_alive": runner, "faults": entries, "faults_html": pages.ledger_table(entries, alive),
        "halt": halt_flag.halted(),
    })


async def run_file(req: Request) -> Response:
    c = _console(req)
    d = _run_dir(c, req.path_params["run_id"])
    path = inside(d, req.path_params["name"], "file")
    if not path.is_file():
        raise Refused(404, f"no such file: {req.path_params['name']!r}")
    media = {".html": "text/html", ".svg": "image/svg+xml", ".json": "application/json", ".md": "text/markdown",
             ".xml": "application/xml", ".jsonl": "application/x-ndjson"}.get(path.suffix, "application/octet-stream")
    resp = FileResponse(path, media_type=media)
    # report.html is the runner's own file, shown in a sandboxed frame: no script of its own.
    resp.headers["content-security-policy"] = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
    return resp


async def run_stream(req: Request) -> Response:
    c = _console(req)
    d = _run_dir(c, req.path_params["run_id"])
    offset = live.parse_offset(req.headers.get("last-event-id") or req.query_params.get("from"))

    async def body() -> AsyncIterator[str]:
        async for chunk in live.follow(d, offset):
            if await req.is_disconnected():
                return
            yield chunk

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def run_halt(req: Request) -> Response:
    c = _console(req)
    await _action(req)
    run_id = safe_name(req.path_params["run_id"])
    _run_dir(c, run_id)
    message = actions.halt_run(run_id, c.ledger())
    log.warning("%s", message)
    return RedirectResponse(f"/runs/{run_id}", 303)


async def experiment_page(req: Request) -> Response:
    c = _console(req)
    title = req.query_params.get("title", "")[:300]
    await asyncio.to_thread(c.index.refresh)
    runs = c.index.runs(title=title)
    if not runs:
        raise Refused(404, f"no runs of an experiment titled {title!r}")
    return _page(req, title, pages.experiment_page(title, runs, trend.compare(runs)), "runs")


def _experiments(c: Console) -> Path:
    if c.experiments_dir is None:
        raise Refused(404, "no catalog: start the console with --experiments DIR")
    return c.experiments_dir


async def catalog_page(req: Request) -> Response:
    c = _console(req)
    entries = await asyncio.to_thread(catalog.entries, _experiments(c), c.variables) if c.experiments_dir else []
    return _page(req, "Catalog", pages.catalog_page(entries), "catalog")


async def entry_page(req: Request) -> Response:
    c = _console(req)
    e = await asyncio.to_thread(catalog.find, _experiments(c), req.path_params["name"], c.variables)
    code, plan = (0, "") if e.kind != "experiment" else await asyncio.to_thread(c.launcher.plan, e.path)
    return _page(req, e.title, pages.entry_page(e, code, plan, csrf=_csrf(req), read_only=c.guard.read_only),
                 "catalog")


async def entry_run(req: Request) -> Response:
    c = _console(req)
    await _action(req)
    e = await asyncio.to_thread(catalog.find, _experiments(c), req.path_params["name"], c.variables)
    if e.kind not in ("experiment", "suite"):
        raise Refused(400, f"{e.name} is {e.kind}: {e.error or 'not an experiment or a suite'}")
    launch = c.launcher.start(e.path, e.kind)
    log.warning("started chaoslab %s %s (pid %d)", "suite run" if e.kind == "suite" else "run", e.path, launch.pid)
    return RedirectResponse(f"/launches/{launch.pid}", 303)


async def launch_page(req: Request) -> Response:
    pid = int(req.path_params["pid"])
    launch = _console(req).launcher.launches.get(pid)
    if launch is None:
        raise Refused(404, f"no run was started by this console as pid {pid}")
    return _page(req, "Starting", pages.launch_page(pid, launch.kind), "catalog")


async def launch_api(req: Request) -> Response:
    c = _console(req)
    launch = c.launcher.launches.get(int(req.path_params["pid"]))
    if launch is None:
        raise Refused(404, "no such launch")
    run_id = await asyncio.to_thread(c.launcher.find_run, launch)
    out: dict[str, Any] = {"run_id": run_id, "exit_code": launch.exit_code}
    if run_id is None and launch.exit_code is not None:
        with contextlib.suppress(OSError):
            out["log"] = launch.log.read_text(errors="replace")[-4000:]
    return JSONResponse(out)


async def machine_page(req: Request) -> Response:
    c = _console(req)
    entries, alive = await asyncio.to_thread(_ledger_entries, c)
    checked = await c.doctor.report(force=req.query_params.get("refresh") == "1")
    body = pages.machine_page(checked, entries, alive, halt_flag.halted(), csrf=_csrf(req),
                              read_only=c.guard.read_only)
    return _page(req, "This machine", body, "machine")


async def machine_halt(req: Request) -> Response:
    form = await _action(req)
    log.warning("%s", actions.halt_all(form.get("reason", "")[:200]))
    return RedirectResponse("/machine", 303)


async def machine_clear(req: Request) -> Response:
    await _action(req)
    log.warning("%s", actions.clear_halt())
    return RedirectResponse("/machine", 303)


async def login(req: Request) -> Response:
    g = _console(req).guard
    if req.method == "POST":
        given = (await _form(req)).get("token", "")
    else:
        given = req.query_params.get("token", "")
    if not g.needs_token:
        return RedirectResponse("/runs", 303)
    if not g.token_ok(given):
        return HTMLResponse(pages.login_page("wrong token" if given else ""), 401 if given else 200)
    resp = RedirectResponse("/runs", 303)  # the token leaves the address bar at once
    resp.set_cookie(SESSION_COOKIE, g.signed_session(), httponly=True, samesite="strict", path="/")
    return resp


# -- errors: one clear line, never a traceback ------------------------------------------------

async def _on_refused(req: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return refuse(req, exc.status, exc.message)


async def _on_error(req: Request, exc: Exception) -> Response:
    log.exception("error serving %s", req.url.path)
    return refuse(req, 500, f"internal error: {type(exc).__name__} (details in the console's log)")


async def _on_http(req: Request, exc: Exception) -> Response:
    status = int(getattr(exc, "status_code", 500))
    return refuse(req, status, str(getattr(exc, "detail", "error")))


def create_app(console: Console) -> Starlette:
    routes = [
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/runs", runs_page),
        Route("/api/runs", runs_api),
        Route("/api/runs/stream", runs_stream),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/stream", run_stream),
        Route("/runs/{run_id}/halt", run_halt, methods=["POST"]),
        Route("/runs/{run_id}/files/{name}", run_file),
        Route("/api/runs/{run_id}/state", run_state),
        Route("/experiment", experiment_page),
        Route("/catalog", catalog_page),
        Route("/catalog/{name:path}/run", entry_run, methods=["POST"]),
        Route("/catalog/{name:path}", entry_page),
        Route("/launches/{pid:int}", launch_page),
        Route("/api/launches/{pid:int}", launch_api),
        Route("/machine", machine_page),
        Route("/machine/halt", machine_halt, methods=["POST"]),
        Route("/machine/clear", machine_clear, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    from starlette.exceptions import HTTPException

    app = Starlette(routes=routes, exception_handlers={Refused: _on_refused, HTTPException: _on_http,
                                                       Exception: _on_error})
    app.state.console = console
    app.add_middleware(GuardMiddleware, guard=console.guard)
    return app
