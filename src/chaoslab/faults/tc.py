"""Traffic-control faults on a test host's interface: ``network.bandwidth.tc`` (tbf) and
``network.latency.netem`` (netem, where the kernel has it; otherwise a refusal that points to the
proxy's ``network.latency``).

The qdisc is the root qdisc of the host's ``eth0`` (inside its network namespace), shaping what
the host sends. Revert deletes it only if it is still ours (same kind and handle).
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any, ClassVar, TypeVar

from pydantic import Field, field_validator

from ..errors import FaultError
from ..system import capabilities
from ..system.nft import netns_exists, netns_prefix
from ..targets.base import NETNS
from ..units import Duration, Size
from . import register
from .base import Fault, FaultParams

HANDLE = "c1a0:"
"""Handle of the qdiscs chaoslab adds (how revert recognises its own)."""

_RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
               "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_bitrate(value: Any) -> float:
    """Bits per second from tc's notation: ``8mbit``, ``1mbps`` (bytes!), ``512kbit``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        m = _RATE.match(value)
        if m and m.group(2).lower() in _RATE_UNITS:
            return float(m.group(1)) * _RATE_UNITS[m.group(2).lower()]
    raise ValueError(f"invalid rate {value!r} (expected e.g. 8mbit, 512kbit, 1mbps = 1 MB/s)")


def tc(args: list[str], netns: str | None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*netns_prefix(netns), "tc", *args], capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise FaultError(f"tc {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def root_qdisc(dev: str, netns: str | None) -> dict[str, Any] | None:
    proc = tc(["-j", "qdisc", "show", "dev", dev], netns, check=False)
    if proc.returncode != 0:
        return None
    for q in json.loads(proc.stdout or "[]"):
        if q.get("root"):
            return dict(q)
    return None


class TcParams(FaultParams):
    interface: str = Field("eth0", description="Interface inside the test host.")


TCP = TypeVar("TCP", bound=TcParams)


class TcFault(Fault[TCP]):
    needs = frozenset({NETNS})
    kind: ClassVar[str]

    @classmethod
    def check(cls) -> None:
        capabilities.require("root", "tc", f"tc.{cls.kind}")

    def qdisc_args(self) -> list[str]:
        raise NotImplementedError

    def inject(self) -> None:
        if self.target is None:
            raise FaultError(f"{self.name} needs a host target")
        netns, where = self.target.platform.netns(self.target, self.name)
        dev = self.params.interface
        current = root_qdisc(dev, netns)
        if current is None:
            raise FaultError(f"{self.name}: {where} has no interface {dev!r}")
        if current.get("kind") not in ("noqueue", "pfifo_fast", "fq_codel", "mq", "fq", "pfifo"):
            raise FaultError(f"{self.name}: {where}:{dev} already has a {current.get('kind')} root qdisc; "
                             "refusing to replace it")
        self.state.update({"netns": netns, "dev": dev, "handle": HANDLE, "kind": self.kind})
        self.checkpoint()
        tc(["qdisc", "add", "dev", dev, "root", "handle", HANDLE, self.kind, *self.qdisc_args()], netns)

    def revert(self) -> None:
        netns, dev = self.state.get("netns"), self.state.get("dev")
        if not dev or (netns and not netns_exists(netns)):
            return
        current = root_qdisc(dev, netns)
        if current and current.get("kind") == self.state.get("kind") and current.get("handle") == HANDLE:
            tc(["qdisc", "del", "dev", dev, "root"], netns, check=False)


class TbfParams(TcParams):
    rate: str = Field(description="Bandwidth in tc notation: 8mbit, 512kbit, 1mbps (= 1 MB/s).")
    burst: Size | None = Field(None, description="Bucket size (default: 10 ms of rate, at least 16 KB).")
    latency: Duration = Field(0.05, gt=0, description="Longest a packet may wait in the bucket before being dropped.")

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: str) -> str:
        parse_bitrate(v)
        return v


@register
class TbfBandwidth(TcFault[TbfParams]):
    name = "network.bandwidth.tc"
    summary = "Limit what a test host sends to a rate (tc tbf on its interface)."
    kind = "tbf"

    def qdisc_args(self) -> list[str]:
        bits = parse_bitrate(self.params.rate)
        burst = self.params.burst or max(16 * 1024, int(bits / 8 / 100))
        return ["rate", f"{int(bits)}bit", "burst", str(burst),
                "latency", f"{max(1, int(self.params.latency * 1000))}ms"]


class NetemParams(TcParams):
    delay: Duration = Field(description="Added one-way delay of what the host sends.")
    jitter: Duration = 0.0


@register
class NetemLatency(TcFault[NetemParams]):
    name = "network.latency.netem"
    summary = "Delay what a test host sends (tc netem); where the kernel lacks netem use network.latency."
    kind = "netem"

    @classmethod
    def check(cls) -> None:
        capabilities.require("root", "tc", "tc.netem", instead="network.latency (the fault proxy)")

    def qdisc_args(self) -> list[str]:
        args = ["delay", f"{self.params.delay * 1000:g}ms"]
        if self.params.jitter:
            args.append(f"{self.params.jitter * 1000:g}ms")
        return args
