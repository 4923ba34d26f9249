"""Dependencies nobody declared: environment variables and command lines that name another
service's host, address or port.

A Compose ``depends_on`` says only what starts first; the edges that matter under a fault are the
connections a service opens, and those are written in its configuration: ``DATABASE_URL=
postgresql://db:5432/app``, ``--redis-url redis://cache:6379``, ``--bootstrap 10.232.0.13:19092``.
A name counts only where a host stands (at the start of a value, after ``//``, ``@``, ``=`` or a
space, and followed by a port, a path or the end), so ``redis://`` (a scheme), ``redis-server``
or ``/app/api.py`` never make an edge to a service called redis or api.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .model import System

_BEFORE = r"(?:^|(?<=[\s=@,;\"'(\[])|(?<=//))"
_AFTER = r"(?::(\d{1,5}))?(?![\w.\-:])"
_LOOPBACK = re.compile(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):(\d{1,5})(?!\d)")


def texts(system: System, name: str) -> list[tuple[str, str]]:
    """(where, text) pairs of one service's configuration that can name another service."""
    svc = system.services[name]
    out = [(f"env {k}", v) for k, v in svc.env.items()]
    if svc.command:
        out.append(("command", " ".join(svc.command)))
    return out


def _timeout_visible(pairs: Iterable[tuple[str, str]]) -> bool:
    return any("timeout" in f"{where} {text}".lower() for where, text in pairs)


def by_name(system: System, aliases: dict[str, set[str]]) -> None:
    """Edges from one service's env/command to another's host name or fixed address."""
    patterns = {
        other: [re.compile(_BEFORE + re.escape(a) + _AFTER) for a in sorted(names, key=len, reverse=True)]
        for other, names in aliases.items()
    }
    for name in system.services:
        pairs = texts(system, name)
        visible = _timeout_visible(pairs)
        for where, text in pairs:
            for other, pats in patterns.items():
                if other == name:
                    continue
                for pat in pats:
                    m = pat.search(text)
                    if m:
                        port = int(m.group(1)) if m.group(1) else None
                        system.depends(name, other, where, port=port, timeout_visible=visible)
                        break


def by_loopback_port(system: System, owner: dict[int, str],
                     links: dict[int, tuple[str, str, dict[str, str]]]) -> None:
    """Edges of services that share the host's loopback (a stack): a ``127.0.0.1:PORT`` names the
    service that owns PORT. ``links`` maps a proxy listen port to (proxy service, upstream
    service, {proxy: link, api: URL}): such an edge goes to the upstream, through the proxy."""
    for name in system.services:
        pairs = texts(system, name)
        visible = _timeout_visible(pairs)
        for where, text in pairs:
            for m in _LOOPBACK.finditer(text):
                port = int(m.group(1))
                if port in links:
                    proxy_svc, upstream, ref = links[port]
                    system.depends(name, proxy_svc, where, port=port, timeout_visible=visible)
                    system.depends(name, upstream, f"{where} through {proxy_svc}", port=port, proxy=ref,
                                   timeout_visible=visible)
                elif port in owner:
                    system.depends(name, owner[port], where, port=port, timeout_visible=visible)
