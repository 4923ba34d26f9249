"""The small JSON-path subset probes and acks use: ``$.a.b``, ``$.items[0].id``, ``$[2]``."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


class PathError(ValueError):
    pass


def parse(path: str) -> list[str | int]:
    if not path.startswith("$"):
        raise PathError(f"invalid JSON path {path!r} (must start with $)")
    rest, pos, out = path[1:], 0, []
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        if not m:
            raise PathError(f"invalid JSON path {path!r} at {rest[pos:]!r}")
        out.append(m.group(1) or (int(m.group(2)) if m.group(2) else m.group(3)))
        pos = m.end()
    return out


_MISSING = object()


def get(data: Any, path: str, default: Any = _MISSING) -> Any:
    cur = data
    for part in parse(path):
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            if default is _MISSING:
                raise PathError(f"{path} not found") from None
            return default
    return cur
