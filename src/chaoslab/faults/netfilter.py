"""Kernel network faults with nftables: ``network.partition`` and ``network.loss``.

One table per run, ``inet chaoslab_<run_id>``; each fault adds its own pair of base chains to it
(``<id>_in`` on the input hook, ``<id>_out`` on output) and on revert deletes them, and the
table when it is left empty. Traffic *to* the target is matched on input and traffic *from* it on
output, so a loopback packet (which passes both hooks) is judged once: 30% loss stays 30%.

For a test host (a network namespace, see ``chaoslab.system.hosts``) the table lives inside that
namespace: the host drops what its peers send it and what it sends them, like Jepsen's
iptables-on-each-node partitions.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any, Literal, TypeVar

from pydantic import Field, field_validator

from ..errors import FaultError
from ..system import capabilities
from ..system.nft import chains_of, drop_chains, netns_exists, nft, table_name
from ..targets.base import ADDRESS
from . import register
from .base import Fault, FaultParams
from .settings import HeldSettings, Setting, SettingGone

Direction = Literal["both", "ingress", "egress"]


class NftTable(Setting):
    """Whether ``inet <table>`` exists (in a namespace or not): each fault holding it adds its own
    chains, and the table goes when the last holder goes (if no chain is left in it)."""

    def __init__(self, table: str, netns: str | None) -> None:
        self.table, self.netns = table, netns

    @property
    def key(self) -> str:
        return f"nft:{self.netns or ''}:{self.table}"

    def read(self) -> Any:
        if self.netns and not netns_exists(self.netns):
            raise SettingGone(f"namespace {self.netns}")
        return "absent" if chains_of(self.table, self.netns) is None else "present"

    def write(self, value: Any) -> None:
        if self.netns and not netns_exists(self.netns):
            raise SettingGone(f"namespace {self.netns}")
        if value == "present":
            nft(f"add table inet {self.table}\n", self.netns)
        elif chains_of(self.table, self.netns) == []:
            nft(f"delete table inet {self.table}\n", self.netns, check=False)


# --- rules ------------------------------------------------------------------------------------

def _family(addr: str) -> str:
    return "ip6" if ipaddress.ip_address(addr).version == 6 else "ip"


def _set(items: list[str] | list[int]) -> str:
    return "{ " + ", ".join(str(i) for i in items) + " }"


def match(addr: str, peers: list[str], ports: list[int], *, towards: bool,
          peer_ports: list[int] | None = None) -> str:
    """nft match for packets to the target (``towards``) or from it, restricted to peers, the
    target's ports and the peers' ports."""
    fam = _family(addr)
    me, other = ("daddr", "saddr") if towards else ("saddr", "daddr")
    mine, theirs = ("dport", "sport") if towards else ("sport", "dport")
    parts = [f"{fam} {me} {addr}"]
    same = [p for p in peers if _family(p) == fam]
    if peers and not same:
        raise FaultError(f"no peer of the same IP version as {addr}")
    if same:
        parts.append(f"{fam} {other} {_set(same)}")
    if ports or peer_ports:
        parts.append("meta l4proto { tcp, udp }")
    if ports:
        parts.append(f"th {mine} {_set(ports)}")
    if peer_ports:
        parts.append(f"th {theirs} {_set(peer_ports)}")
    return " ".join(parts)


class NetParams(FaultParams):
    peers: list[str] = Field(default_factory=list, description="Addresses or test hosts on the other side (default: everyone).")
    ports: list[int] = Field(default_factory=list,
                             description="Target ports (default: the target's ports, else all; all when peer_ports is given).",
                             json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 65535}})
    peer_ports: list[int] = Field(default_factory=list,
                                  description="The peers' ports: from a dependent's side, the ports of the service it "
                                              "connects to (its own are ephemeral), so one edge is cut and nothing else.",
                                  json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 65535}})
    direction: Direction = Field("both", description="ingress: traffic to the target; egress: from it.")

    @field_validator("ports", "peer_ports")
    @classmethod
    def _ports(cls, v: list[int]) -> list[int]:
        bad = [p for p in v if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"ports must be 1..65535, got {bad[0]}")
        return v


NP = TypeVar("NP", bound=NetParams)


class NetfilterFault(Fault[NP]):
    needs = frozenset({ADDRESS})

    @classmethod
    def check(cls) -> None:
        capabilities.require("root", "nft")

    def action(self) -> str:
        return "drop"

    def _endpoints(self) -> tuple[str, str | None, list[str], list[int]]:
        """(target address, its namespace, peer addresses, the target's ports)."""
        if self.target is None:
            raise FaultError(f"{self.name} needs a target")
        platform = self.target.platform
        addr, netns = platform.endpoint(self.target, self.name)
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise FaultError(f"{self.name}: {addr!r} is not an IP address") from None
        peers = [platform.peer_address(p) for p in self.params.peers]
        # a dependent connects out from ephemeral ports: its own (listening) ports say nothing
        ports = list(self.params.ports or ([] if self.params.peer_ports else self.target.ports))
        if netns is None and not ports and not self.params.peer_ports and ipaddress.ip_address(addr).is_loopback:
            # Every local service talks over loopback: an address-wide rule would hit them all.
            raise FaultError(f"{self.name}: refusing to act on all loopback traffic of {addr}; give ports")
        return addr, netns, peers, ports

    def inject(self) -> None:
        addr, netns, peers, ports = self._endpoints()
        table = table_name(self.run_id)
        chain = "f" + uuid.uuid4().hex[:8]
        chains = [f"{chain}_in", f"{chain}_out"]
        self.state.update({"table": table, "chains": chains, "netns": netns})
        held = HeldSettings(self.state, self.run_id)
        self.checkpoint()
        action = self.action()
        lines = [f"add table inet {table}"]
        for name, hook in zip(chains, ("input", "output"), strict=True):
            lines.append(f"add chain inet {table} {name} {{ type filter hook {hook} priority -10; policy accept; }}")
        if self.params.direction in ("both", "ingress"):
            lines.append(f"add rule inet {table} {chains[0]} {match(addr, peers, ports, towards=True, peer_ports=self.params.peer_ports)} {action}")
        if self.params.direction in ("both", "egress"):
            lines.append(f"add rule inet {table} {chains[1]} {match(addr, peers, ports, towards=False, peer_ports=self.params.peer_ports)} {action}")
        try:
            held.hold(NftTable(table, netns), "present")
            nft("\n".join(lines) + "\n", netns)
        except BaseException:
            self.revert()
            raise

    def revert(self) -> None:
        if not self.state.get("table"):
            return
        table, netns = self.state["table"], self.state.get("netns")
        drop_chains(table, list(self.state.get("chains") or []), netns)
        if "owners" in self.state:
            HeldSettings(self.state, self.run_id).release(NftTable(table, netns))
        elif chains_of(table, netns) == []:
            nft(f"delete table inet {table}\n", netns, check=False)  # an entry written before owners


@register
class NetworkPartition(NetfilterFault[NetParams]):
    name = "network.partition"
    summary = "Drop traffic between a target and its peers (address/port, one or both directions)."


class LossParams(NetParams):
    percent: float = Field(gt=0, le=100, description="Share of matching packets dropped at random.")


@register
class NetworkLoss(NetfilterFault[LossParams]):
    name = "network.loss"
    summary = "Drop a random percentage of the target's packets (nftables numgen)."

    def action(self) -> str:
        # numgen draws 0..9999 per packet: 0.01% resolution.
        return f"numgen random mod 10000 < {round(self.params.percent * 100)} drop"
