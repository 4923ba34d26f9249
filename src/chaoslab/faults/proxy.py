"""Network faults on a proxied link: each adds one toxic to a chaoslab (or Toxiproxy) proxy.

The target is ``{proxy: LINK, api: URL}``. Toxic names are derived from the run id, the fault
and its parameters, so ``chaoslab recover`` can rebuild the exact name from a ledger record in
another process and remove only what this run added. Revert tolerates the toxic or the proxy
being gone already; an unreachable API at inject time is a ``FaultError`` (nothing injected).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from ..errors import FaultError, ProxyApiError
from ..proxy.client import DEFAULT_API, ProxyClient
from ..units import Duration, Size
from . import register
from .base import Fault, FaultParams


class ToxicParams(FaultParams):
    stream: Literal["upstream", "downstream"] = Field(
        "downstream", description="Direction: downstream = upstream server to client, upstream = client to server."
    )
    toxicity: float = Field(1.0, ge=0.0, le=1.0, description="Probability that a connection is affected.")


TP = TypeVar("TP", bound=ToxicParams)


class ToxicFault(Fault[TP]):
    """Base: one toxic of ``toxic_type`` with ``attributes()`` on the target link."""

    target_kinds = frozenset({"proxy"})
    toxic_type: ClassVar[str]

    def attributes(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- naming and API ----------------------------------------------------------------------
    @property
    def link(self) -> str:
        if self.target is None or not self.target.proxy:
            raise FaultError(f"{self.name}: the target must be a proxy link ({{proxy: NAME}})")
        return self.target.proxy

    def client(self) -> ProxyClient:
        api = (self.target.api if self.target else None) or DEFAULT_API
        return ProxyClient(api)

    @property
    def toxic_name(self) -> str:
        params = json.dumps(self.params.model_dump(mode="json"), sort_keys=True)
        digest = hashlib.sha1(f"{self.name}|{params}".encode()).hexdigest()[:8]
        return f"chaoslab-{self.run_id or 'norun'}-{self.name}-{digest}"

    # -- lifecycle ---------------------------------------------------------------------------
    def inject(self) -> None:
        self.state["toxic"] = self.toxic_name
        try:
            self.client().add_toxic(
                self.link,
                self.toxic_type,
                self.attributes(),
                name=self.toxic_name,
                stream=self.params.stream,
                toxicity=self.params.toxicity,
            )
        except ProxyApiError as exc:
            raise FaultError(f"{self.name} on link {self.link!r}: {exc}") from None

    def revert(self) -> None:
        name = self.state.get("toxic") or self.toxic_name
        try:
            self.client().delete_toxic(self.link, name)
        except ProxyApiError as exc:
            if exc.status == 404:  # toxic or whole proxy already gone: nothing left to undo
                return
            raise FaultError(f"{self.name} on link {self.link!r}: could not remove toxic {name}: {exc}") from None


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class LatencyParams(ToxicParams):
    latency: Duration = Field(description="Delay added to each chunk, e.g. 250ms.")
    jitter: Duration = Field(0.0, description="Random ± variation of the delay.")


@register
class NetworkLatency(ToxicFault[LatencyParams]):
    name = "network.latency"
    summary = "Delay the data of a proxied link by latency ± jitter."
    Params = LatencyParams
    toxic_type = "latency"

    def attributes(self) -> dict[str, Any]:
        p = self.params
        return {"latency": _ms(p.latency), "jitter": _ms(p.jitter)}


class BandwidthParams(ToxicParams):
    rate: Size = Field(description="Bytes per second, e.g. 100KB (1 KB = 1000 bytes).")


@register
class NetworkBandwidth(ToxicFault[BandwidthParams]):
    name = "network.bandwidth"
    summary = "Limit the throughput of a proxied link."
    Params = BandwidthParams
    toxic_type = "bandwidth"

    def attributes(self) -> dict[str, Any]:
        p = self.params
        if p.rate < 1000:
            raise FaultError(f"{self.name}: rate must be at least 1KB per second (the proxy counts in KB/s)")
        return {"rate": p.rate // 1000}


class TimeoutParams(ToxicParams):
    timeout: Duration = Field(0.0, description="Close connections after this long; 0 = hold them open.")


class _TimeoutToxicFault(ToxicFault[TimeoutParams]):
    """Toxics whose one attribute is ``timeout`` (ms): timeout and reset_peer."""

    Params = TimeoutParams

    def attributes(self) -> dict[str, Any]:
        p = self.params
        return {"timeout": _ms(p.timeout)}


@register
class NetworkBlackhole(_TimeoutToxicFault):
    name = "network.blackhole"
    summary = "Stop all data on a proxied link (Toxiproxy timeout toxic)."
    toxic_type = "timeout"


@register
class NetworkReset(_TimeoutToxicFault):
    name = "network.reset"
    summary = "Reset connections (TCP RST) on a proxied link after their first data."
    toxic_type = "reset_peer"


class SlowCloseParams(ToxicParams):
    delay: Duration = Field(description="Delay before a close is passed on.")


@register
class NetworkSlowClose(ToxicFault[SlowCloseParams]):
    name = "network.slow_close"
    summary = "Delay the closing of connections on a proxied link."
    Params = SlowCloseParams
    toxic_type = "slow_close"

    def attributes(self) -> dict[str, Any]:
        p = self.params
        return {"delay": _ms(p.delay)}


class SlicerParams(ToxicParams):
    average_size: Size = Field(description="Average slice size in bytes.")
    size_variation: Size = Field(0, description="± variation of the slice size.")
    delay: Duration = Field(0.0, description="Delay between slices (microsecond precision).")


@register
class NetworkSlicer(ToxicFault[SlicerParams]):
    name = "network.slicer"
    summary = "Cut the data of a proxied link into small, delayed slices."
    Params = SlicerParams
    toxic_type = "slicer"

    def attributes(self) -> dict[str, Any]:
        p = self.params
        return {"average_size": p.average_size, "size_variation": p.size_variation, "delay": round(p.delay * 1e6)}


class LimitDataParams(ToxicParams):
    bytes: Size = Field(description="Bytes passed per connection before it is closed.")


@register
class NetworkLimitData(ToxicFault[LimitDataParams]):
    name = "network.limit_data"
    summary = "Close connections of a proxied link after a number of bytes."
    Params = LimitDataParams
    toxic_type = "limit_data"

    def attributes(self) -> dict[str, Any]:
        p = self.params
        return {"bytes": p.bytes}


class DownParams(FaultParams):
    pass


@register
class NetworkDown(Fault[DownParams]):
    """Disable the link: its listener and connections close; revert enables it again."""

    name = "network.down"
    summary = "Take a proxied link down (listener and connections closed)."
    Params = DownParams
    target_kinds = frozenset({"proxy"})

    def _client_and_link(self) -> tuple[ProxyClient, str]:
        if self.target is None or not self.target.proxy:
            raise FaultError(f"{self.name}: the target must be a proxy link ({{proxy: NAME}})")
        return ProxyClient(self.target.api or DEFAULT_API), self.target.proxy

    def inject(self) -> None:
        client, link = self._client_and_link()
        try:
            before = client.proxy(link)
            if not before.get("enabled", True):
                self.state["was_disabled"] = True  # someone else took it down: leave it down
                return
            # Written before the call: a crash right after it must still re-enable on recover.
            self.state["disabled_by"] = self.run_id or "norun"
            client.update_proxy(link, enabled=False)
        except ProxyApiError as exc:
            raise FaultError(f"{self.name} on link {link!r}: {exc}") from None

    def revert(self) -> None:
        if self.state.get("was_disabled"):
            return
        client, link = self._client_and_link()
        try:
            client.update_proxy(link, enabled=True)
        except ProxyApiError as exc:
            if exc.status == 404:
                return
            raise FaultError(f"{self.name} on link {link!r}: could not enable it again: {exc}") from None
