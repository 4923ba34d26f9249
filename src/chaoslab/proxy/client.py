"""A small synchronous client of the proxy API (ours or Toxiproxy's), used by the network faults."""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import ProxyApiError

DEFAULT_API = "http://127.0.0.1:8474"


class ProxyClient:
    def __init__(self, api: str = DEFAULT_API, timeout: float = 5.0) -> None:
        self.api = api.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        url = self.api + path
        try:
            response = httpx.request(method, url, json=json, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ProxyApiError(f"proxy API {self.api} unreachable: {exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("error") or response.text
            except ValueError:
                message = response.text
            raise ProxyApiError(f"{method} {path}: {response.status_code} {message}".strip(), response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    # -- proxies ---------------------------------------------------------------------------
    def version(self) -> str:
        data = self._call("GET", "/version")
        return str(data.get("version")) if isinstance(data, dict) else str(data)

    def proxies(self) -> dict[str, Any]:
        return dict(self._call("GET", "/proxies") or {})

    def proxy(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/proxies/{name}"))

    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> dict[str, Any]:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return dict(self._call("POST", "/proxies", body))

    def update_proxy(self, name: str, **fields: Any) -> dict[str, Any]:
        return dict(self._call("POST", f"/proxies/{name}", fields))

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self._call("POST", "/populate", proxies)["proxies"])

    def reset(self) -> None:
        self._call("POST", "/reset")

    # -- toxics ----------------------------------------------------------------------------
    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/proxies/{proxy}/toxics"))

    def add_toxic(
        self,
        proxy: str,
        type: str,
        attributes: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes or {}}
        if name:
            body["name"] = name
        return dict(self._call("POST", f"/proxies/{proxy}/toxics", body))

    def update_toxic(self, proxy: str, name: str, attributes: dict[str, Any], toxicity: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return dict(self._call("POST", f"/proxies/{proxy}/toxics/{name}", body))

    def delete_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")


__all__ = ["DEFAULT_API", "ProxyApiError", "ProxyClient"]
