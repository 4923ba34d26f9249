"""The API's nouns and their JSON: toxic specs, proxy input, API errors with Toxiproxy's messages."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import toxics
from .toxics import Toxic

STREAMS = ("upstream", "downstream")


class ApiError(Exception):
    """An error the API answers with ``{"error": message, "status": code}``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}


def bad_body(detail: str) -> ApiError:
    return ApiError(f"bad request body: {detail}", 400)


def missing(field: str) -> ApiError:
    return ApiError(f"missing required field: {field}", 400)


PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_EXISTS = ApiError("proxy already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)
TOXIC_EXISTS = ApiError("toxic already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)


def parse_json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise bad_body(str(exc).splitlines()[0] if str(exc) else "invalid JSON") from None


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


# -- addresses ---------------------------------------------------------------------------------

def split_address(text: str, what: str, *, allow_empty_host: bool) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` -> (host, port). ApiError 400 otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ApiError(f"invalid {what} address {text!r}: expected host:port", 400)
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ApiError(f"invalid {what} address {text!r}: port out of range", 400)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ApiError(f"invalid {what} address {text!r}: bad IPv6 address", 400) from None
    if not host and not allow_empty_host:
        raise ApiError(f"invalid {what} address {text!r}: missing host", 400)
    if any(c.isspace() or c in "/[]" for c in host) or "\x00" in host:
        raise ApiError(f"invalid {what} address {text!r}", 400)
    return host, port


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- proxies -----------------------------------------------------------------------------------

class ProxyInput(BaseModel):
    """Body of ``POST /proxies``, one entry of ``/populate`` and of the config file."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field("", max_length=256)
    listen: str = Field("", max_length=512)
    upstream: str = Field("", max_length=512)
    enabled: bool | None = None
    toxics: list[dict[str, Any]] | None = None

    @classmethod
    def parse(cls, data: Any, where: str = "") -> ProxyInput:
        if not isinstance(data, dict):
            raise bad_body(f"{where}expected a JSON object")
        try:
            item = cls.model_validate(data, strict=True)
        except ValidationError as exc:
            raise bad_body(where + validation_message(exc)) from None
        if not item.name:
            raise missing("name" + (f" at {where.rstrip(': ')}" if where else ""))
        if not item.upstream:
            raise missing("upstream" + (f" at {where.rstrip(': ')}" if where else ""))
        split_address(item.upstream, "upstream", allow_empty_host=False)
        if item.listen:
            split_address(item.listen, "listen", allow_empty_host=True)
        return item


class ProxyUpdate(BaseModel):
    """Body of ``PATCH/POST /proxies/{name}``: every field optional."""

    model_config = ConfigDict(extra="ignore")

    listen: str | None = Field(None, max_length=512)
    upstream: str | None = Field(None, max_length=512)
    enabled: bool | None = None


# -- toxics ------------------------------------------------------------------------------------

@dataclass
class ToxicSpec:
    """A toxic as the API knows it: Toxiproxy's wrapper fields plus the toxic and its attributes."""

    name: str
    type: str
    stream: str
    """``upstream`` or ``downstream``: the direction the toxic acts on."""
    toxicity: float
    toxic: Toxic[Any]
    stream_text: str = ""
    """The stream as the client wrote it (``UpStream``), returned as sent, as Toxiproxy does."""

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": self.toxic.attributes.model_dump(mode="json"),
            "name": self.name,
            "type": self.type,
            "stream": self.stream_text or self.stream,
            # Go's encoder writes a whole float32 without a fraction: 1, not 1.0
            "toxicity": int(self.toxicity) if self.toxicity.is_integer() else self.toxicity,
        }


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_body("toxicity: expected a number between 0 and 1")
    if not 0.0 <= float(value) <= 1.0:
        raise bad_body("toxicity: must be between 0 and 1")
    return float(value)


def _attributes(cls: type[Toxic[Any]], data: Any, base: dict[str, Any] | None = None) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise bad_body("attributes: expected a JSON object")
    merged = {**(base or {}), **data}
    try:
        return cls.Attributes.model_validate(merged)
    except ValidationError as exc:
        raise bad_body("attributes." + validation_message(exc)) from None


def toxic_from_json(data: Any) -> ToxicSpec:
    """Toxiproxy's ``AddToxicJson``: defaults stream downstream, toxicity 1, name type_stream."""
    if not isinstance(data, dict):
        raise bad_body("expected a JSON object")
    for key in ("name", "type", "stream"):
        if key in data and not isinstance(data[key], str):
            raise bad_body(f"{key}: expected a string")
    stream_text = data.get("stream") or "downstream"
    stream = stream_text.lower()
    if stream not in STREAMS:
        raise INVALID_STREAM
    type_name = data.get("type") or ""
    cls = toxics.get(type_name)
    if cls is None:
        raise INVALID_TOXIC_TYPE
    if stream not in cls.streams:
        raise ApiError(f"toxic {type_name} acts on the {' or '.join(cls.streams)} stream only", 400)
    name = data.get("name") or f"{type_name}_{stream_text}"
    if len(name) > 256:
        raise bad_body("name: at most 256 characters")
    toxicity = _toxicity(data["toxicity"]) if data.get("toxicity") is not None else 1.0
    attrs = _attributes(cls, data.get("attributes"))
    return ToxicSpec(name=name, type=type_name, stream=stream, toxicity=toxicity, toxic=cls(attrs),
                     stream_text=stream_text)


def toxic_updated(spec: ToxicSpec, data: Any) -> ToxicSpec:
    """Toxiproxy's ``UpdateToxicJson``: only attributes and toxicity change."""
    if not isinstance(data, dict):
        raise bad_body("expected a JSON object")
    cls = type(spec.toxic)
    toxicity = _toxicity(data["toxicity"]) if data.get("toxicity") is not None else spec.toxicity
    base = spec.toxic.attributes.model_dump()
    attrs = _attributes(cls, data.get("attributes"), base)
    return ToxicSpec(name=spec.name, type=spec.type, stream=spec.stream, toxicity=toxicity, toxic=cls(attrs),
                     stream_text=spec.stream_text)
