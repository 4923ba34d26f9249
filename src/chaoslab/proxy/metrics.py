"""``GET /metrics``: the proxies' byte counters in Prometheus text format.

Names and labels are those of Toxiproxy's ``-proxy-metrics`` (``toxiproxy_proxy_received_bytes_total``
and ``..._sent_bytes_total`` by direction, listener, proxy, upstream), so its dashboards work
unchanged; the connection counts are ours. Collected on each scrape from plain integers the
links update in place: no Prometheus object is touched per chunk.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .proxy import ProxyCollection

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LABELS = ["direction", "listener", "proxy", "upstream"]


class ProxyCollector(Collector):
    def __init__(self, coll: ProxyCollection) -> None:
        self.coll = coll

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily("toxiproxy_proxy_received_bytes", "Bytes read from the source side.", labels=LABELS)
        sent = CounterMetricFamily("toxiproxy_proxy_sent_bytes", "Bytes written to the destination side.", labels=LABELS)
        spliced = CounterMetricFamily("chaoslab_proxy_spliced_bytes", "Of the bytes sent, those moved by splice(2) "
                                      "(a direction without toxics) rather than through the proxy's memory.",
                                      labels=LABELS)
        opened = CounterMetricFamily("chaoslab_proxy_connections", "Client connections accepted.", labels=["proxy"])
        live = GaugeMetricFamily("chaoslab_proxy_open_connections", "Client connections open now.", labels=["proxy"])
        for proxy in self.coll.proxies.values():
            for direction, (got, put, zero_copy) in proxy.bytes.items():
                labels = [direction, proxy.listen, proxy.name, proxy.upstream]
                received.add_metric(labels, got)
                sent.add_metric(labels, put)
                spliced.add_metric(labels, zero_copy)
            opened.add_metric([proxy.name], proxy.connections_total)
            live.add_metric([proxy.name], len(proxy.connections))
        yield from (received, sent, spliced, opened, live)


def exposition(coll: ProxyCollection) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(coll))
    return generate_latest(registry)
