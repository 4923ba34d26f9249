"""Schemathesis against our OpenAPI document: no generated request gets a 5xx or kills the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .helpers import ProxyProcess

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
LOOPBACK_ANY_PORT = {"type": "string", "enum": ["127.0.0.1:0"]}


def test_schemathesis_finds_no_server_error(proxy_server: ProxyProcess, tmp_path: Path) -> None:
    doc = proxy_server.http.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    # Generated proxies may only listen on loopback ephemeral ports (tests share this machine).
    schemas["ProxyInput"]["properties"]["listen"] = LOOPBACK_ANY_PORT
    schemas["ProxyUpdate"]["properties"]["listen"] = LOOPBACK_ANY_PORT
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(doc))
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            str(path),
            "--url",
            proxy_server.url,
            "--checks",
            "not_a_server_error",
            "--mode",
            "all",
            "-n",
            "25",
            "--seed",
            "7",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "generated" in result.stdout and "failed" not in result.stdout.split("SUMMARY")[-1]
    assert proxy_server.alive()
    assert proxy_server.http.get("/version").status_code == 200
