"""Who may use the console and what a request may name.

- On 127.0.0.1 (the default) anyone on this machine may look, as with ``chaoslab report``; off
  loopback every request needs the token (``--token``, or one generated and printed at start,
  never a default password). The browser trades the token once for a session cookie (HttpOnly,
  SameSite=Strict, so another site's page never sends it).
- Every action that changes something is a POST carrying the session and a CSRF token derived
  from it (HMAC), and its Origin, when the browser sends one, must be this console: a page of
  another site can neither read the token nor forge the header.
- The Host header must name this console: a DNS-rebinding page on evil.example resolving to
  127.0.0.1 is refused even on loopback.
- A run id or a file name from a request is one path component of a closed alphabet, and the
  path it makes is checked to stay inside its root (symlinks resolved), so no request names a
  file outside the runs and experiments directories.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

SESSION_COOKIE = "chaoslab_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

# A run id is `YYYYmmdd-HHMMSS-slug-hex`; experiment paths are relative, slash-separated names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class Refused(Exception):
    """A request the console will not serve: its status and one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def safe_name(name: str, what: str = "run id") -> str:
    """``name`` if it is one harmless path component; Refused (404) otherwise."""
    if not _NAME.match(name) or name in (".", ".."):
        raise Refused(404, f"no such {what}: {name!r}")
    return name


def inside(root: Path, relative: str, what: str = "file") -> Path:
    """``root/relative`` for a slash-separated ``relative`` whose every part is a safe name and
    whose real path stays under ``root`` (a symlink pointing out is refused too)."""
    parts = relative.split("/")
    for part in parts:
        safe_name(part, what)
    path = root.joinpath(*parts)
    real_root = root.resolve()
    try:
        path.resolve().relative_to(real_root)
    except ValueError:
        raise Refused(404, f"no such {what}: {relative!r}") from None
    return path


@dataclass
class Guard:
    """The console's security settings and its secrets (fresh at each start)."""

    host: str
    port: int
    token: str | None
    read_only: bool = False
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def needs_token(self) -> bool:
        return self.token is not None

    def new_session(self) -> str:
        return secrets.token_urlsafe(24)

    def session_ok(self, session: str | None) -> bool:
        # Sessions are signed rather than stored: a restart (new secret) logs everyone out.
        if not session or "." not in session:
            return False
        sid, _, sig = session.rpartition(".")
        return hmac.compare_digest(sig, self._sign("session", sid))

    def signed_session(self) -> str:
        sid = self.new_session()
        return f"{sid}.{self._sign('session', sid)}"

    def csrf_for(self, session: str) -> str:
        return self._sign("csrf", session)

    def csrf_ok(self, session: str | None, token: str | None) -> bool:
        return bool(session and token) and hmac.compare_digest(self.csrf_for(str(session)), str(token))

    def token_ok(self, given: str | None) -> bool:
        return self.token is not None and given is not None and hmac.compare_digest(
            given.encode(), self.token.encode())

    def _sign(self, purpose: str, value: str) -> str:
        return hmac.new(self.secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def host_ok(self, host_header: str | None) -> bool:
        """Without a token (loopback) the Host must be a loopback name: a DNS-rebinding page on
        evil.example resolving to 127.0.0.1 is refused. With a token, the token is the gate."""
        if self.needs_token:
            return True
        if not host_header:
            return False
        name = host_header if host_header.endswith("]") else host_header.rsplit(":", 1)[0]
        return is_loopback(name)

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        """No Origin (a same-origin GET, curl) or an Origin naming the host the request came to."""
        if origin is None:
            return True
        return bool(host_header) and origin in (f"http://{host_header}", f"https://{host_header}")
