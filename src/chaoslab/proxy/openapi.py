"""The OpenAPI 3.0 document of the API (served at ``GET /openapi.json``).

Toxic attribute schemas come from the toxics' own pydantic models, so a new toxic module shows
up here without editing this file.
"""

from __future__ import annotations

from typing import Any

from . import toxics

ADDRESS = {"type": "string", "pattern": r"^.*:[0-9]{1,5}$", "example": "127.0.0.1:0"}
NAME = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[A-Za-z0-9_.-]+$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _attributes_schema() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in toxics.names():
        cls = toxics.get(name)
        assert cls is not None
        for field, prop in cls.Attributes.model_json_schema().get("properties", {}).items():
            prop = {k: v for k, v in prop.items() if k in ("type", "minimum", "maximum", "description")}
            merged.setdefault(field, prop)
    return {"type": "object", "properties": merged, "description": "Depends on `type`; see the toxics."}


def _proxy_paths() -> dict[str, Any]:
    proxy_param = {"name": "proxy", "in": "path", "required": True, "schema": {"type": "string"}}
    not_found = _error("Proxy (or toxic) not found.")
    bad = _error("Bad request body.")
    return {
        "/proxies": {
            "get": {
                "operationId": "proxyIndex",
                "responses": {"200": _json({"type": "object", "additionalProperties": _ref("Proxy")}, "All proxies by name.")},
            },
            "post": {
                "operationId": "proxyCreate",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ProxyInput")}}},
                "responses": {
                    "201": _json(_ref("Proxy"), "Created."),
                    "400": bad,
                    "409": _error("A proxy with that name exists, or the listen address is in use."),
                },
            },
        },
        "/populate": {
            "post": {
                "operationId": "populate",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "array", "items": _ref("ProxyInput")}}},
                },
                "responses": {
                    "201": _json(_ref("PopulateResult"), "Created or kept."),
                    "400": _json(_ref("PopulateResult"), "Bad input; nothing changed."),
                    "409": _json(_ref("PopulateResult"), "A listen address is in use."),
                },
            },
        },
        "/proxies/{proxy}": {
            "parameters": [proxy_param],
            "get": {"operationId": "proxyShow", "responses": {"200": _json(_ref("Proxy"), "The proxy."), "404": not_found}},
            "post": {
                "operationId": "proxyUpdatePost",
                "deprecated": True,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ProxyUpdate")}}},
                "responses": {"200": _json(_ref("Proxy"), "Updated."), "400": bad, "404": not_found, "409": _error("Listen address in use.")},
            },
            "patch": {
                "operationId": "proxyUpdate",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ProxyUpdate")}}},
                "responses": {"200": _json(_ref("Proxy"), "Updated."), "400": bad, "404": not_found, "409": _error("Listen address in use.")},
            },
            "delete": {"operationId": "proxyDelete", "responses": {"204": {"description": "Deleted."}, "404": not_found}},
        },
        "/reset": {
            "post": {"operationId": "reset", "responses": {"204": {"description": "All proxies enabled, all toxics removed."}}},
        },
        "/version": {
            "get": {
                "operationId": "version",
                "responses": {"200": _json({"type": "object", "properties": {"version": {"type": "string"}}, "required": ["version"]}, "Version.")},
            },
        },
    }


def _toxic_paths() -> dict[str, Any]:
    proxy_param = {"name": "proxy", "in": "path", "required": True, "schema": {"type": "string"}}
    toxic_param = {"name": "toxic", "in": "path", "required": True, "schema": {"type": "string"}}
    not_found = _error("Proxy (or toxic) not found.")
    bad = _error("Bad request body.")
    return {
        "/proxies/{proxy}/toxics": {
            "parameters": [proxy_param],
            "get": {
                "operationId": "toxicIndex",
                "responses": {"200": _json({"type": "array", "items": _ref("Toxic")}, "Toxics of the proxy."), "404": not_found},
            },
            "post": {
                "operationId": "toxicCreate",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ToxicInput")}}},
                "responses": {
                    "200": _json(_ref("Toxic"), "Created (200, as Toxiproxy)."),
                    "400": bad,
                    "404": not_found,
                    "409": _error("A toxic with that name exists."),
                },
            },
        },
        "/proxies/{proxy}/toxics/{toxic}": {
            "parameters": [proxy_param, toxic_param],
            "get": {"operationId": "toxicShow", "responses": {"200": _json(_ref("Toxic"), "The toxic."), "404": not_found}},
            "post": {
                "operationId": "toxicUpdatePost",
                "deprecated": True,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ToxicUpdate")}}},
                "responses": {"200": _json(_ref("Toxic"), "Updated."), "400": bad, "404": not_found},
            },
            "patch": {
                "operationId": "toxicUpdate",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ToxicUpdate")}}},
                "responses": {"200": _json(_ref("Toxic"), "Updated."), "400": bad, "404": not_found},
            },
            "delete": {"operationId": "toxicDelete", "responses": {"204": {"description": "Deleted."}, "404": not_found}},
        },
    }


def _schemas() -> dict[str, Any]:
    return {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
            "required": ["error", "status"],
        },
        "ProxyInput": {
            "type": "object",
            "properties": {
                "name": NAME,
                "listen": ADDRESS,
                "upstream": ADDRESS,
                "enabled": {"type": "boolean", "default": True},
                "toxics": {"type": "array", "items": _ref("ToxicInput"), "description": "chaoslab extension."},
            },
            "required": ["name", "upstream"],
        },
        "ProxyUpdate": {
            "type": "object",
            "properties": {"listen": ADDRESS, "upstream": ADDRESS, "enabled": {"type": "boolean"}},
        },
        "Proxy": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "listen": {"type": "string"},
                "upstream": {"type": "string"},
                "enabled": {"type": "boolean"},
                "toxics": {"type": "array", "items": _ref("Toxic")},
            },
            "required": ["name", "listen", "upstream", "enabled", "toxics"],
        },
        "PopulateResult": {
            "type": "object",
            "properties": {
                "proxies": {"type": "array", "items": _ref("Proxy")},
                "error": {"type": "string"},
                "status": {"type": "integer"},
            },
            "required": ["proxies"],
        },
        "ToxicInput": {
            "type": "object",
            "properties": {
                "name": NAME,
                "type": {"type": "string", "enum": toxics.names()},
                "stream": {"type": "string", "enum": ["upstream", "downstream"], "default": "downstream"},
                "toxicity": {"type": "number", "minimum": 0, "maximum": 1, "default": 1},
                "attributes": _attributes_schema(),
            },
            "required": ["type"],
        },
        "ToxicUpdate": {
            "type": "object",
            "properties": {
                "toxicity": {"type": "number", "minimum": 0, "maximum": 1},
                "attributes": _attributes_schema(),
            },
        },
        "Toxic": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "type": {"type": "string"},
                "stream": {"type": "string", "enum": ["upstream", "downstream"]},
                "toxicity": {"type": "number"},
                "attributes": {"type": "object"},
            },
            "required": ["name", "type", "stream", "toxicity", "attributes"],
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "chaoslab fault proxy",
            "version": "2.12.0",
            "description": "Toxiproxy 2.x compatible API of `chaoslab proxy serve`.",
        },
        "paths": _proxy_paths() | _toxic_paths(),
        "components": {"schemas": _schemas()},
    }
