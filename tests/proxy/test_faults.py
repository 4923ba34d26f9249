"""The network.* experiment faults against a real proxy: inject, effect, revert, recover from a record."""

from __future__ import annotations

import socket
import time

import pytest

from chaoslab import faults
from chaoslab.errors import FaultError
from chaoslab.faults import proxy as family
from chaoslab.faults.base import Fault
from chaoslab.targets import TargetSpec, resolve

from .helpers import ProxyProcess, TcpServer, free_port_url, recv_all


def target(proxy: ProxyProcess | None, link: str = "link", api: str | None = None):  # type: ignore[no-untyped-def]
    spec = TargetSpec(proxy=link, api=api or (proxy.url if proxy else "http://127.0.0.1:1"))
    return resolve("db-link", spec)


# The classes straight from our family module: these tests need no other family to import.
CLASSES: dict[str, type[Fault]] = {
    c.name: c
    for c in vars(family).values()
    if isinstance(c, type) and issubclass(c, Fault) and getattr(c, "name", None)
}


def make(name: str, params: dict, proxy: ProxyProcess | None, run_id: str = "run-42", **kw):  # type: ignore[no-untyped-def]
    cls = CLASSES[name]
    return cls(cls.Params.model_validate(params), target(proxy, **kw), run_id=run_id)


def rtt(host: str, port: int) -> float:
    with socket.create_connection((host, port), timeout=10) as s:
        t = time.perf_counter()
        s.sendall(b"x")
        s.recv(1)
        return time.perf_counter() - t


ALL = {
    "network.latency": {"latency": "100ms", "jitter": "5ms", "stream": "upstream"},
    "network.bandwidth": {"rate": "50KB"},
    "network.blackhole": {"timeout": "2s"},
    "network.reset": {"timeout": "10ms"},
    "network.slow_close": {"delay": "300ms"},
    "network.slicer": {"average_size": 64, "size_variation": 8, "delay": "100us"},
    "network.limit_data": {"bytes": "1KB", "toxicity": 0.5},
    # generated from the toxic registry
    "network.corrupt": {"probability": 0.01, "seed": 3},
    "network.packet_loss": {"loss_rate": 0.2, "correlation": 0.1},
    "network.http_status": {"code": 503, "share": 0.3, "seed": 1},
    "network.http_latency": {"latency": "20ms", "stream": "upstream"},
    "network.http_header": {"header": "X-Trace"},
    "network.http_abort": {"after": "1KB", "share": 0.5},
}


def test_every_fault_is_registered() -> None:
    assert set(CLASSES) == set(ALL) | {"network.down"}
    for name, cls in CLASSES.items():
        assert faults.get(name) is cls
        assert cls.target_kinds == frozenset({"proxy"})


@pytest.mark.parametrize("name", sorted(ALL))
def test_toxic_fault_inject_revert_and_recover(
    name: str, proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    proxy_server.create("link", echo_server.port)
    fault = make(name, ALL[name], proxy_server)
    fault.inject()
    toxics = proxy_server.http.get("/proxies/link/toxics").json()
    assert len(toxics) == 1 and "run-42" in toxics[0]["name"]
    assert toxics[0]["type"] == type(fault).toxic_type  # type: ignore[attr-defined]
    # Another process rebuilds the fault from its ledger record and reverts exactly it.
    record = fault.to_record()
    other = CLASSES[name].from_record(record)
    proxy_server.toxic("link", "latency", latency=1)  # someone else's toxic stays
    other.revert()
    assert [t["name"] for t in proxy_server.http.get("/proxies/link/toxics").json()] == [
        "latency_downstream"
    ]
    other.revert()  # idempotent
    proxy_server.http.delete("/proxies/link")
    fault.revert()  # proxy gone: still fine


def test_latency_fault_has_its_effect(proxy_server: ProxyProcess, echo_server: TcpServer) -> None:
    host, port = proxy_server.create("link", echo_server.port)
    fault = make("network.latency", {"latency": "150ms"}, proxy_server)
    fault.inject()
    assert rtt(host, port) > 0.14
    fault.revert()
    assert rtt(host, port) < 0.1


def test_down_fault_takes_link_down_and_back(
    proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    host, port = proxy_server.create("link", echo_server.port)
    fault = make("network.down", {}, proxy_server)
    with socket.create_connection((host, port), timeout=10) as s:
        fault.inject()
        assert recv_all(s, limit=5) == b""
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()
    CLASSES["network.down"].from_record(fault.to_record()).revert()
    assert rtt(host, port) < 1
    fault.revert()
    proxy_server.http.delete("/proxies/link")
    fault.revert()


def test_unreachable_api_is_fault_error_at_inject() -> None:
    url = free_port_url()
    for name, params in [*ALL.items(), ("network.down", {})]:
        fault = make(name, params, None, api=url)
        with pytest.raises(FaultError, match="unreachable"):
            fault.inject()


def test_unknown_link_is_fault_error(proxy_server: ProxyProcess) -> None:
    with pytest.raises(FaultError, match="proxy not found"):
        make("network.latency", {"latency": "1s"}, proxy_server, link="nope").inject()
    with pytest.raises(FaultError, match="proxy not found"):
        make("network.down", {}, proxy_server, link="nope").inject()
