"""Request templates with per-operation unique values: ``{{seq}}``, ``{{key}}``, ``{{uuid}}``, ``{{run}}``.

``{{key}}`` is the operation's write key (``<run>-<seq>``), the value the data-loss checker
matches against the final read when the system does not return its own id. A string that is
exactly ``{{seq}}`` becomes a number, so JSON bodies keep their types.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

_VAR = re.compile(r"\{\{\s*(seq|key|uuid|run)\s*\}\}")


def uses(template: Any, name: str) -> bool:
    if isinstance(template, str):
        return any(m.group(1) == name for m in _VAR.finditer(template))
    if isinstance(template, dict):
        return any(uses(k, name) or uses(v, name) for k, v in template.items())
    if isinstance(template, list):
        return any(uses(v, name) for v in template)
    return False


def is_static(template: Any) -> bool:
    return not any(uses(template, n) for n in ("seq", "key", "uuid", "run"))


def render(template: Any, values: dict[str, Any]) -> Any:
    """The template with variables substituted (``values`` holds seq, key, run; uuid is made on demand)."""
    if isinstance(template, str):
        m = _VAR.fullmatch(template.strip())
        if m and m.group(1) == "seq":
            return values["seq"]

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "uuid":
                values.setdefault("uuid", str(uuid.uuid4()))
            return str(values[name])

        return _VAR.sub(sub, template)
    if isinstance(template, dict):
        return {render(k, values): render(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, values) for v in template]
    return template
