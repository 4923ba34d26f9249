"""The startup config file (with toxics, which Toxiproxy ignores) and the CLI entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from chaoslab.proxy.cli import proxy as proxy_cli

from .helpers import ProxyProcess, TcpServer, free_port_url, rand, roundtrip


def test_config_file_with_toxics(tmp_path: Path, echo_server: TcpServer) -> None:
    cfg = tmp_path / "proxies.yaml"
    cfg.write_text(
        f"""
- name: chaoslab_cfg_db
  listen: 127.0.0.1:0
  upstream: 127.0.0.1:{echo_server.port}
  toxics:
    - {{type: latency, attributes: {{latency: 40}}}}
    - {{name: cut, type: limit_data, stream: upstream, attributes: {{bytes: 1000000}}}}
- name: chaoslab_cfg_off
  upstream: 127.0.0.1:{echo_server.port}
  enabled: false
"""
    )
    server = ProxyProcess("--config", str(cfg))
    try:
        proxies = server.http.get("/proxies").json()
        assert proxies["chaoslab_cfg_off"]["enabled"] is False
        db = proxies["chaoslab_cfg_db"]
        assert [t["name"] for t in db["toxics"]] == ["latency_downstream", "cut"]
        host, port = db["listen"].rsplit(":", 1)
        payload = rand(50_000)
        assert roundtrip(host, int(port), payload) == payload
        result = CliRunner().invoke(proxy_cli, ["list", "--api", server.url])
        assert result.exit_code == 0
        assert "chaoslab_cfg_db" in result.output and "cut: limit_data upstream" in result.output
    finally:
        server.stop()


def test_json_config_as_toxiproxy_writes_it(tmp_path: Path, echo_server: TcpServer) -> None:
    cfg = tmp_path / "toxiproxy.json"
    cfg.write_text(
        json.dumps(
            [
                {
                    "name": "chaoslab_cfg_json",
                    "listen": "127.0.0.1:0",
                    "upstream": f"127.0.0.1:{echo_server.port}",
                }
            ]
        )
    )
    server = ProxyProcess("--config", str(cfg))
    try:
        assert server.http.get("/proxies/chaoslab_cfg_json").json()["enabled"] is True
    finally:
        server.stop()


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaoslab.proxy", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_config_is_one_line_with_position(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "- name: a\n  upstream: 127.0.0.1:1\n  toxics:\n    - {type: latency, attributes: {latency: -5}}\n"
    )
    result = run_serve("--config", str(cfg))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"{cfg}:4" in line and "latency" in line
    cfg.write_text("- name: a\n  upstream: nowhere\n")
    result = run_serve("--config", str(cfg))
    assert result.returncode == 2 and f"{cfg}:2" in result.stderr and "upstream" in result.stderr
    result = run_serve("--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "no such file" in result.stderr


def test_api_port_in_use_is_one_line_error(proxy_server: ProxyProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chaoslab.proxy", "serve", "--port", str(proxy_server.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 4
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_list_against_nothing_is_one_line_error() -> None:
    result = CliRunner().invoke(proxy_cli, ["list", "--api", free_port_url()])
    assert result.exit_code == 4 and "unreachable" in result.output
