"""The startup config file: Toxiproxy's JSON array of proxies, in JSON or YAML, plus their toxics.

Toxiproxy silently ignores ``toxics`` in its config (its issues #281 and #447); we apply them.
Errors are one line with file, line and column.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from ..errors import InputError
from ..source import load_document
from .model import ApiError, ProxyInput, ToxicSpec, toxic_from_json


class ConfigToxic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=256)
    type: str
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(1.0, ge=0.0, le=1.0)
    attributes: dict[str, Any] = Field(default_factory=dict)


class ConfigProxy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    listen: str = "127.0.0.1:0"
    upstream: str = Field(min_length=1)
    enabled: bool = True
    toxics: list[ConfigToxic] = Field(default_factory=list)


class ConfigFile(RootModel[list[ConfigProxy]]):
    pass


def load_config(path: str | os.PathLike[str]) -> list[tuple[ProxyInput, list[ToxicSpec]]]:
    doc = load_document(path)
    config = doc.validate(ConfigFile)
    out: list[tuple[ProxyInput, list[ToxicSpec]]] = []
    names: set[str] = set()
    for i, entry in enumerate(config.root):
        if entry.name in names:
            raise doc.error((i, "name"), f"duplicate proxy name {entry.name!r}")
        names.add(entry.name)
        raw = entry.model_dump(exclude={"toxics"})
        try:
            item = ProxyInput.parse(raw)
        except ApiError as exc:
            field = "listen" if "listen" in exc.message else "upstream"
            raise doc.error((i, field), exc.message) from None
        specs: list[ToxicSpec] = []
        for j, toxic in enumerate(entry.toxics):
            try:
                spec = toxic_from_json(toxic.model_dump(exclude_none=True))
            except ApiError as exc:
                raise doc.error((i, "toxics", j), exc.message) from None
            if any(s.name == spec.name for s in specs):
                raise doc.error((i, "toxics", j), f"duplicate toxic name {spec.name!r}")
            specs.append(spec)
        out.append((item, specs))
    return out


__all__ = ["ConfigFile", "InputError", "load_config"]
