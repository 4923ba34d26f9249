"""The HTTP API against real clients: toxiproxy-python unmodified, chaostoolkit-toxiproxy's calls, bad input."""

from __future__ import annotations

import socket

import pytest
import requests
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from .helpers import ProxyProcess, TcpServer, rand, roundtrip, sha


@pytest.fixture
def toxi(proxy_server: ProxyProcess) -> Toxiproxy:
    APIConsumer.host, APIConsumer.port = "127.0.0.1", proxy_server.port
    return Toxiproxy()


def test_toxiproxy_python_client_drives_the_server(toxi: Toxiproxy, echo_server: TcpServer) -> None:
    assert toxi.running()
    assert b"version" in toxi.version()
    proxy = toxi.create(upstream=f"127.0.0.1:{echo_server.port}", name="chaoslab_tp_echo")
    with pytest.raises(ProxyExists):
        toxi.create(upstream=f"127.0.0.1:{echo_server.port}", name="chaoslab_tp_echo")
    assert set(toxi.proxies()) == {"chaoslab_tp_echo"}
    host, port = proxy.listen.rsplit(":", 1)
    payload = rand(200_000)
    assert sha(roundtrip(host, int(port), payload)) == sha(payload)

    proxy.add_toxic(type="latency", attributes={"latency": 100, "jitter": 0})
    proxy.add_toxic(type="bandwidth", stream="upstream", name="bw", attributes={"rate": 10_000})
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "bw"}
    assert toxics["latency_downstream"].attributes == {"latency": 100, "jitter": 0}
    assert toxics["bw"].stream == "upstream"
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency", attributes={"latency": 1})
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_toxic")
    proxy.destroy_toxic("bw")
    assert set(proxy.toxics()) == {"latency_downstream"}
    with pytest.raises(NotFound):
        proxy.destroy_toxic("bw")

    with proxy.down():
        assert toxi.get_proxy("chaoslab_tp_echo").enabled is False
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), timeout=2).close()
    assert toxi.get_proxy("chaoslab_tp_echo").enabled is True
    assert sha(roundtrip(host, int(port), payload)) == sha(payload)  # same port after re-enable

    proxy.disable()
    assert toxi.reset()
    again = toxi.get_proxy("chaoslab_tp_echo")
    assert again.enabled is True
    assert again.toxics() == {}
    populated = toxi.populate(
        [
            {
                "name": "chaoslab_tp_two",
                "upstream": f"127.0.0.1:{echo_server.port}",
                "listen": "127.0.0.1:0",
            }
        ]
    )
    assert [p.name for p in populated] == ["chaoslab_tp_two"]
    toxi.destroy_all()
    assert toxi.proxies() == {}


def test_chaostoolkit_toxiproxy_calls(proxy_server: ProxyProcess, echo_server: TcpServer) -> None:
    """The exact requests chaostoolkit-toxiproxy's toxiproxyapi.py and actions make."""
    base = proxy_server.url + "/proxies"
    # create_proxy: listen host 0.0.0.0 by default; we use loopback (tests stay on 127.0.0.0/8).
    r = requests.post(
        base,
        json={
            "name": "chaoslab_ctk",
            "listen": "127.0.0.1:0",
            "upstream": f"127.0.0.1:{echo_server.port}",
            "enabled": True,
        },
    )
    assert r.ok and r.status_code == 201
    port = r.json()["listen"].split(":")[-1]
    assert port.isdigit() and port != "0"
    # create_toxic: the response's name is compared with the requested one.
    for toxic_type, attrs in [
        ("latency", {"latency": 50, "jitter": 0}),
        ("bandwidth", {"rate": 100}),
        ("slow_close", {"delay": 10}),
        ("timeout", {"timeout": 0}),
        ("slicer", {"average_size": 10, "size_variation": 5, "delay": 10}),
        ("limit_data", {"bytes": 1000}),
        ("reset_peer", None),  # attributes=None is what create_toxic sends when none are given
    ]:
        body = {
            "name": f"ctk_{toxic_type}",
            "type": toxic_type,
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": attrs,
        }
        r = requests.post(f"{base}/chaoslab_ctk/toxics", json=body)
        assert r.ok, r.text
        assert r.json()["name"] == f"ctk_{toxic_type}"
        assert requests.delete(f"{base}/chaoslab_ctk/toxics/ctk_{toxic_type}").ok
    # modify_proxy (POST, the deprecated form) with only "enabled", then probes read the proxy.
    r = requests.post(f"{base}/chaoslab_ctk", json={"enabled": False})
    assert r.ok and r.json()["enabled"] is False and r.json()["listen"].split(":")[-1] == port
    assert requests.get(f"{base}/chaoslab_ctk").json()["name"] == "chaoslab_ctk"
    r = requests.patch(f"{base}/chaoslab_ctk", json={"enabled": True})
    assert r.ok and r.json()["enabled"] is True
    assert requests.post(proxy_server.url + "/reset").status_code == 204
    assert requests.delete(f"{base}/chaoslab_ctk").status_code == 204
    assert requests.get(f"{base}/chaoslab_ctk").status_code == 404


def test_shapes_and_status_codes(proxy_server: ProxyProcess, echo_server: TcpServer) -> None:
    http = proxy_server.http
    up = f"127.0.0.1:{echo_server.port}"
    r = http.post("/proxies", json={"name": "p", "upstream": up})
    assert r.status_code == 201
    assert set(r.json()) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert r.json()["listen"].startswith("127.0.0.1:")
    assert http.post("/proxies", json={"name": "p", "upstream": up}).json() == {
        "error": "proxy already exists",
        "status": 409,
    }
    assert http.get("/proxies/nope").json() == {"error": "proxy not found", "status": 404}
    r = http.post("/proxies/p/toxics", json={"type": "latency", "attributes": {"latency": 5}})
    assert r.status_code == 200
    assert r.json() == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 5, "jitter": 0},
    }
    r = http.patch(
        "/proxies/p/toxics/latency_downstream", json={"attributes": {"jitter": 2}, "toxicity": 0.5}
    )
    assert (
        r.status_code == 200
        and r.json()["attributes"] == {"latency": 5, "jitter": 2}
        and r.json()["toxicity"] == 0.5
    )
    assert http.get("/proxies/p/toxics/latency_downstream").json()["attributes"]["jitter"] == 2
    assert http.get("/proxies/p/toxics").json()[0]["name"] == "latency_downstream"
    assert http.get("/proxies/p/toxics/nope").json() == {"error": "toxic not found", "status": 404}
    assert http.delete("/proxies/p/toxics/nope").status_code == 404
    assert http.delete("/proxies/p/toxics/latency_downstream").status_code == 204
    r = http.post(
        "/populate",
        json=[{"name": "p", "upstream": up}, {"name": "q", "upstream": up, "enabled": False}],
    )
    assert r.status_code == 201
    assert [p["name"] for p in r.json()["proxies"]] == ["p", "q"]
    assert http.get("/proxies/q").json()["enabled"] is False
    r = http.post("/populate", json=[{"name": "r"}])
    assert r.status_code == 400 and r.json()["proxies"] is None and "upstream" in r.json()["error"]
    assert "r" not in http.get("/proxies").json()
    assert http.get("/version").json()["version"].startswith("2.")
    assert http.post("/reset").status_code == 204
    assert http.delete("/proxies/p").status_code == 204
    assert http.delete("/proxies/p").status_code == 404


BAD = [
    ("POST", "/proxies", b"{not json", 400),
    ("POST", "/proxies", b"", 400),
    ("POST", "/proxies", b"[]", 400),
    ("POST", "/proxies", b'{"name": 5, "upstream": "127.0.0.1:1"}', 400),
    ("POST", "/proxies", b'{"name": "x"}', 400),
    ("POST", "/proxies", b'{"name": "x", "upstream": "nohost"}', 400),
    ("POST", "/proxies", b'{"name": "x", "upstream": "127.0.0.1:99999"}', 400),
    (
        "POST",
        "/proxies",
        b'{"name": "x", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:-5"}',
        400,
    ),
    (
        "POST",
        "/proxies",
        b'{"name": "x", "upstream": "127.0.0.1:1", "listen": "no.such.host.invalid:0"}',
        400,
    ),
    ("POST", "/proxies", b'{"name": "x", "upstream": "127.0.0.1:1", "enabled": "yes"}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "latency", "attributes": {"latency": -1}}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "latency", "attributes": {"latency": 1.5}}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "latency", "attributes": {"latency": "10"}}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "bandwidth", "attributes": {"rate": -100}}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "slicer", "attributes": {"average_size": 0}}', 400),
    (
        "POST",
        "/proxies/base/toxics",
        b'{"type": "slicer", "attributes": {"average_size": 5, "size_variation": 9}}',
        400,
    ),
    ("POST", "/proxies/base/toxics", b'{"type": "limit_data", "attributes": {"bytes": -1}}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "timeout", "attributes": {"timeout": 1e30}}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "latency", "toxicity": 2}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "latency", "toxicity": true}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "latency", "stream": "sideways"}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "teleport"}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": 7}', 400),
    ("POST", "/proxies/base/toxics", b'{"type": "latency", "attributes": [1]}', 400),
    ("POST", "/proxies/base/toxics", b'"latency"', 400),
    ("POST", "/proxies/nope/toxics", b'{"type": "latency"}', 404),
    ("PATCH", "/proxies/base", b'{"enabled": 1}', 400),
    ("PATCH", "/proxies/base", b'{"upstream": ""}', 400),
    ("PATCH", "/proxies/base", b"[1, 2]", 400),
    ("PUT", "/proxies/base", b"{}", 405),
    ("GET", "/no/such/route", b"", 404),
    ("POST", "/populate", b'{"name": "x"}', 400),
    (
        "POST",
        "/populate",
        b'[{"name": "d", "upstream": "127.0.0.1:1"}, {"name": "d", "upstream": "127.0.0.1:1"}]',
        400,
    ),
    ("POST", "/populate", b"[" * 100_000, 400),
]


def test_bad_input_is_4xx_json_and_server_survives(
    proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    http = proxy_server.http
    assert (
        http.post(
            "/proxies", json={"name": "base", "upstream": f"127.0.0.1:{echo_server.port}"}
        ).status_code
        == 201
    )
    for method, path, body, status in BAD:
        r = http.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, (method, path, body[:80], r.status_code, r.text)
        assert r.json()["status"] == status and r.json()["error"], r.text
    assert http.get("/proxies/base/toxics").json() == []
    assert proxy_server.alive()


def test_listen_port_in_use_is_409_and_bad_update_keeps_link(
    proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    http = proxy_server.http
    up = f"127.0.0.1:{echo_server.port}"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = f"127.0.0.1:{busy.getsockname()[1]}"
    try:
        r = http.post("/proxies", json={"name": "busy", "upstream": up, "listen": taken})
        assert r.status_code == 409 and "in use" in r.json()["error"]
        assert "busy" not in http.get("/proxies").json()
        host, port = proxy_server.create("ok", echo_server.port)
        r = http.patch("/proxies/ok", json={"listen": taken})
        assert r.status_code == 409
        assert http.get("/proxies/ok").json()["listen"] == f"{host}:{port}"
        payload = rand(10_000)
        assert roundtrip(host, port, payload) == payload
    finally:
        busy.close()


def test_openapi_document_is_served(proxy_server: ProxyProcess) -> None:
    doc = proxy_server.http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/proxies",
        "/populate",
        "/proxies/{proxy}",
        "/proxies/{proxy}/toxics",
        "/proxies/{proxy}/toxics/{toxic}",
        "/reset",
        "/version",
    } <= set(doc["paths"])
    assert set(doc["components"]["schemas"]["ToxicInput"]["properties"]["type"]["enum"]) == {
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "packet_loss",
        "corrupt",
        "http_status",
        "http_latency",
        "http_header",
        "http_abort",
    }
