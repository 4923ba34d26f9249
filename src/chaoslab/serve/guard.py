"""The console's guard, as ASGI middleware: the host check, the token or session, read-only and
Origin, before any route runs, and the hardening headers on every response. The rules
themselves (tokens, signed sessions, allowed origins, safe paths) are in security.py."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from . import pages
from .security import SESSION_COOKIE, Guard

#: On every response: no other site may frame a page (a Halt button under a decoy, clickjacking),
#: no address (a sign-in link's token) leaves for another site in a Referer ("same-origin": with
#: "no-referrer" the browser sends "Origin: null" on our own form posts, and the guard refuses
#: them), no content is sniffed into a type.
HARDENING = [
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
]


class GuardMiddleware:
    """Host check, token/session, read-only and Origin, before any route runs. The CSRF token of
    a POST is checked by ``_action`` (the form is read there, once)."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        req = Request(scope)
        g = self.guard
        host = req.headers.get("host")
        refusal: Response | None = None
        session = req.cookies.get(SESSION_COOKIE)
        valid = g.session_ok(session)
        bearer = req.headers.get("authorization", "")
        by_token = bearer.startswith("Bearer ") and g.token_ok(bearer[7:])
        new_session: str | None = None
        path = req.url.path
        if not g.host_ok(host):
            refusal = refuse(req, 421, f"this console does not answer for host {host!r}")
        elif path.startswith("/static/") or path == "/login":
            pass
        elif g.needs_token and not (valid or by_token):
            refusal = (HTMLResponse(pages.login_page(), 401) if req.method == "GET" and wants_html(req)
                       else refuse(req, 401, "sign in first: this console needs its token"))
        elif not valid and not by_token:
            new_session = g.signed_session()  # loopback without token: a session for the CSRF token
            session = new_session
        if refusal is None and req.method not in ("GET", "HEAD"):
            if g.read_only and path != "/login":
                refusal = refuse(req, 403, "this console is read-only (--read-only): no action is accepted")
            elif not g.origin_ok(req.headers.get("origin"), host):
                refusal = refuse(req, 403, "cross-site request refused (Origin is not this console)")
            elif new_session is not None:
                refusal = refuse(req, 403, "no session: load the page first (CSRF)")
        if refusal is None and path.endswith("/stream") and not g.origin_ok(req.headers.get("origin"), host):
            refusal = refuse(req, 403, "the live stream is for this console's pages only (Origin)")
        if refusal is not None:
            await refusal(scope, receive, hardened(send))
            return
        scope.setdefault("state", {})["session"] = session
        scope["state"]["by_token"] = by_token

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.extend(HARDENING)
                if new_session is not None:
                    cookie = f"{SESSION_COOKIE}={new_session}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def hardened(send: Send) -> Send:
    async def send_hardened(message: Any) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", []).extend(HARDENING)
        await send(message)

    return send_hardened


def wants_html(req: Request) -> bool:
    return "text/html" in req.headers.get("accept", "") or "/api/" not in req.url.path


def refuse(req: Request, status: int, message: str) -> Response:
    if req.url.path.startswith("/api/") or "text/html" not in req.headers.get("accept", ""):
        return PlainTextResponse(message + "\n", status)
    return HTMLResponse(pages.error_page(status, message), status)
