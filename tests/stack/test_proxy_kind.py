"""The chaoslab-proxy kind runs the real fault proxy with inline links, health-checked on its API."""

from __future__ import annotations

import sys

import httpx
from stack_helpers import StackFactory, free_ports


def test_proxy_kind_forwards_through_its_links(stacks: StackFactory) -> None:
    api, web, link = free_ports(3)
    stack = stacks.load(f"""
name: proxied
services:
  web:
    command: ["{sys.executable}", -m, http.server, "{web}", --bind, 127.0.0.1]
    healthcheck: {{http: "http://127.0.0.1:{web}/", interval: 500ms}}
  toxi:
    chaoslab-proxy:
      port: {api}
      proxies: [{{name: web, listen: "127.0.0.1:{link}", upstream: "127.0.0.1:{web}"}}]
    depends_on: [web]
""")
    stack.up(timeout=60)
    info = stack.resolve("toxi")
    assert info["ports"] == sorted([api, link])
    assert info["proxies"]["web"]["upstream"] == f"127.0.0.1:{web}"
    assert httpx.get(f"{info['api']}/proxies/web", timeout=5).json()["enabled"] is True
    assert httpx.get(f"http://127.0.0.1:{link}/", timeout=5).status_code == 200
