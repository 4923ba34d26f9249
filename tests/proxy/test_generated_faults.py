"""network.* faults generated from the toxic registry: parameters in the user's unit, attributes
in the toxic's, as the proxy shows them."""

from __future__ import annotations

from chaoslab import faults
from chaoslab.proxy import toxics
from chaoslab.targets import TargetSpec, resolve

from .helpers import ProxyProcess, TcpServer


def _inject(proxy: ProxyProcess, name: str, params: dict) -> dict:  # type: ignore[type-arg]
    cls = faults.get(name)
    assert cls is not None, name
    fault = cls(
        cls.Params.model_validate(params),
        resolve("t", TargetSpec(proxy="gen", api=proxy.url)),
        run_id="gen-1",
    )
    fault.inject()
    [toxic] = proxy.http.get("/proxies/gen/toxics").json()
    fault.revert()
    assert proxy.http.get("/proxies/gen/toxics").json() == []
    return dict(toxic)


def test_every_toxic_has_a_network_fault() -> None:
    written = {"timeout": "network.blackhole", "reset_peer": "network.reset"}
    for type_name in toxics.names():
        assert faults.get(written.get(type_name, f"network.{type_name}")) is not None, type_name


def test_generated_faults_carry_their_attributes(
    proxy_server: ProxyProcess, echo_server: TcpServer
) -> None:
    proxy_server.create("gen", echo_server.port)
    toxic = _inject(
        proxy_server, "network.corrupt", {"probability": 0.25, "seed": 9, "stream": "upstream"}
    )
    assert toxic["type"] == "corrupt" and toxic["stream"] == "upstream"
    assert toxic["attributes"] == {"probability": 0.25, "seed": 9}
    toxic = _inject(proxy_server, "network.packet_loss", {"loss_rate": 0.5, "toxicity": 0.5})
    assert toxic["attributes"] == {"loss_rate": 0.5, "correlation": 0.0}
    assert toxic["toxicity"] == 0.5
