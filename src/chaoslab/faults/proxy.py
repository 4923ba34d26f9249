"""Network faults on a proxied link: each adds one toxic to a chaoslab (or Toxiproxy) proxy.

The target is ``{proxy: LINK, api: URL}``. Toxic names are derived from the run id, the fault
and its parameters, so ``chaoslab recover`` can rebuild the exact name from a ledger record in
another process and remove only what this run added. Revert tolerates the toxic or the proxy
being gone already; an unreachable API at inject time is a ``FaultError`` (nothing injected).
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, create_model

from ..errors import FaultError, ProxyApiError
from ..proxy import toxics
from ..proxy.client import DEFAULT_API, ProxyClient
from ..targets.base import PROXY
from ..units import Duration, Size
from . import register
from .base import Fault, FaultParams
from .settings import HeldSettings, Setting, SettingGone


class ToxicParams(FaultParams):
    stream: Literal["upstream", "downstream"] = Field(
        "downstream", description="Direction: downstream = upstream server to client, upstream = client to server."
    )
    toxicity: float = Field(1.0, ge=0.0, le=1.0, description="Probability that a connection is affected.")


TP = TypeVar("TP", bound=ToxicParams)


class ToxicFault(Fault[TP]):
    """Base: one toxic of ``toxic_type`` with ``attributes()`` on the target link."""

    needs = frozenset({PROXY})
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
        # One toxic per fault instance (two overlapping identical faults, e.g. a repeated step,
        # are two toxics): the name is saved before the toxic exists, so recover finds it.
        self.state["toxic"] = f"{self.toxic_name}-{uuid.uuid4().hex[:6]}"
        self.checkpoint()
        try:
            self.client().add_toxic(
                self.link,
                self.toxic_type,
                self.attributes(),
                name=self.state["toxic"],
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
    needs = frozenset({PROXY})

    def _client_and_link(self) -> tuple[ProxyClient, str]:
        if self.target is None or not self.target.proxy:
            raise FaultError(f"{self.name}: the target must be a proxy link ({{proxy: NAME}})")
        return ProxyClient(self.target.api or DEFAULT_API), self.target.proxy

    def inject(self) -> None:
        client, link = self._client_and_link()
        held = HeldSettings(self.state, self.run_id)
        self.checkpoint()
        try:
            held.hold(ProxyEnabled(client, link), False)
        except (ProxyApiError, SettingGone) as exc:
            raise FaultError(f"{self.name} on link {link!r}: {exc}") from None

    def revert(self) -> None:
        if "owners" not in self.state:
            return
        client, link = self._client_and_link()
        try:
            HeldSettings(self.state, self.run_id).release(ProxyEnabled(client, link))
        except ProxyApiError as exc:
            raise FaultError(f"{self.name} on link {link!r}: could not enable it again: {exc}") from None


class ProxyEnabled(Setting):
    """Whether a proxied link is enabled: overlapping network.down faults stack on it."""

    def __init__(self, client: ProxyClient, link: str) -> None:
        self.client, self.link = client, link

    @property
    def key(self) -> str:
        return f"proxy-enabled:{self.client.api}:{self.link}"

    def read(self) -> Any:
        return bool(self.client.proxy(self.link).get("enabled", True))  # no link: the API's error

    def write(self, value: Any) -> None:
        try:
            self.client.update_proxy(self.link, enabled=bool(value))
        except ProxyApiError as exc:
            if exc.status == 404:
                raise SettingGone(self.link) from None
            raise


# -- faults generated from the toxic registry ------------------------------------------------------
# A toxic with no hand-written fault above becomes ``network.<type>``: its attributes are the
# parameters, in the user's unit its ``unit`` names (a duration for ms/us, a size for bytes), so
# a new toxic is its own module and nothing here.
_TO_TOXIC: dict[str, Any] = {
    "ms": lambda v: round(v * 1000),
    "us": lambda v: round(v * 1e6),
}
_USER_TYPE: dict[str, Any] = {"ms": Duration, "us": Duration, "bytes": Size}


def _unit(field: Any) -> str | None:
    extra = field.json_schema_extra
    unit = extra.get("unit") if isinstance(extra, dict) else None
    return unit if isinstance(unit, str) else None


def _generated(toxic: type[toxics.Toxic[Any]]) -> type[ToxicFault[Any]]:
    fields: dict[str, Any] = {}
    units: dict[str, str | None] = {}
    for key, field in toxic.Attributes.model_fields.items():
        unit = units[key] = _unit(field)
        if unit in _USER_TYPE:
            default = field.default
            if unit in _TO_TOXIC and isinstance(default, int | float):
                default = default / (1000 if unit == "ms" else 1e6)
            fields[key] = (_USER_TYPE[unit], Field(default, description=field.description))
        else:
            fields[key] = (field.annotation, field)
    params = create_model(f"{toxic.__name__}Params", __base__=ToxicParams, **fields)

    def attributes(self: ToxicFault[Any]) -> dict[str, Any]:
        values = self.params.model_dump(include=set(units))
        return {k: _TO_TOXIC.get(units[k] or "", lambda v: v)(v) for k, v in values.items()}

    doc = sys.modules[toxic.__module__].__doc__ or toxic.type
    summary = doc.strip().splitlines()[0].split(": ", 1)[-1]
    return type(f"Network_{toxic.type}", (ToxicFault,), {
        "name": f"network.{toxic.type}",
        "summary": summary[:1].upper() + summary[1:],
        "Params": params,
        "toxic_type": toxic.type,
        "attributes": attributes,
        "__module__": __name__,
    })


_WRITTEN = {"latency", "bandwidth", "timeout", "reset_peer", "slow_close", "slicer", "limit_data"}
for _type in toxics.names():
    _toxic = toxics.get(_type)
    if _type not in _WRITTEN and _toxic is not None:
        _fault = register(_generated(_toxic))
        globals()[_fault.__name__] = _fault  # a member of this family module like the written ones
