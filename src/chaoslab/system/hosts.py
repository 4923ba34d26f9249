"""Test hosts: network namespaces joined by veth pairs to one bridge, each with its own address.

    net = hosts.create("lab", ["n1", "n2", "n3"])      # netns chaoslab-lab-n1 .. on bridge clb<hash>
    hosts.reachable(net.host("n1"), net.host("n2").address)
    hosts.partition(net, [["n1"], ["n2", "n3"]])       # Jepsen style: isolate, halves, bridge
    hosts.heal(net); hosts.destroy("lab")

The bridge has no address, so the hosts reach each other and nothing else. A net is described
by a small JSON file under ``/run/chaoslab/hosts`` so the CLI, faults (``{host: "lab/n1"}``)
and ``chaoslab recover`` find it from any process.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ChaoslabError, FaultError, InputError, TargetError
from . import capabilities
from .nft import nft

STATE_DIR = Path(os.environ.get("CHAOSLAB_HOSTS_DIR", "/run/chaoslab/hosts"))
PARTITION_TABLE = "chaoslab_hosts"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,19}$")


@dataclass(frozen=True)
class Host:
    name: str
    net: str
    address: str
    netns: str
    veth: str
    """Root-namespace end of the host's veth pair (the host's end is ``eth0``)."""


@dataclass
class HostNet:
    name: str
    subnet: str
    bridge: str
    hosts: list[Host] = field(default_factory=list)

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise TargetError(f"net {self.name!r} has no host {name!r} (hosts: {', '.join(h.name for h in self.hosts)})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostNet:
        return cls(data["name"], data["subnet"], data["bridge"], [Host(**h) for h in data["hosts"]])


def _ifname(prefix: str, *parts: str) -> str:
    # Interface names are at most 15 bytes: a hash keeps them short and unique per net/host.
    return prefix + hashlib.sha1("/".join(parts).encode()).hexdigest()[:10]


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise FaultError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def _state_file(name: str) -> Path:
    return STATE_DIR / f"{name}.json"


def create(name: str, hosts: Sequence[str], subnet: str = "10.77.0.0/24") -> HostNet:
    """Create a net of hosts. Everything created is recorded first, so ``destroy`` undoes a half
    created net too."""
    capabilities.require("root", "netns")
    if not _NAME.match(name):
        raise InputError(f"invalid net name {name!r} (lowercase letters, digits, _; at most 20)")
    bad = [h for h in hosts if not _NAME.match(h)]
    if bad:
        raise InputError(f"invalid host name {bad[0]!r} (lowercase letters, digits, _; at most 20)")
    if _state_file(name).exists():
        raise InputError(f"net {name!r} already exists (chaoslab hosts down {name})")
    try:
        network = ipaddress.ip_network(subnet)
    except ValueError as exc:
        raise InputError(f"invalid subnet {subnet!r}: {exc}") from None
    addrs = list(network.hosts())
    if len(hosts) > len(addrs):
        raise InputError(f"subnet {subnet} has room for {len(addrs)} hosts, not {len(hosts)}")
    net = HostNet(name, subnet, _ifname("clb", name), [
        Host(h, name, str(addrs[i]), f"chaoslab-{name}-{h}", _ifname("clv", name, h)) for i, h in enumerate(hosts)
    ])
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    _state_file(name).write_text(json.dumps(net.to_dict(), indent=2))
    try:
        _ip("link", "add", net.bridge, "type", "bridge")
        _ip("link", "set", net.bridge, "up")
        for h in net.hosts:
            _ip("netns", "add", h.netns)
            _ip("link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
            _ip("link", "set", h.veth, "master", net.bridge)
            _ip("link", "set", h.veth, "up")
            _ip("addr", "add", f"{h.address}/{network.prefixlen}", "dev", "eth0", netns=h.netns)
            _ip("link", "set", "eth0", "up", netns=h.netns)
            _ip("link", "set", "lo", "up", netns=h.netns)
    except ChaoslabError:
        destroy(name)
        raise
    return net


def load(name: str) -> HostNet:
    try:
        return HostNet.from_dict(json.loads(_state_file(name).read_text()))
    except FileNotFoundError:
        raise TargetError(f"no test-host net named {name!r} (chaoslab hosts up {name} ...)") from None


def nets() -> list[HostNet]:
    if not STATE_DIR.is_dir():
        return []
    return [load(p.stem) for p in sorted(STATE_DIR.glob("*.json"))]


def destroy(name: str) -> None:
    """Remove a net's namespaces, veths and bridge. Idempotent; tolerates half-created nets."""
    try:
        net = load(name)
    except TargetError:
        return
    for h in net.hosts:
        _ip("link", "del", h.veth, check=False)
        _ip("netns", "del", h.netns, check=False)
    _ip("link", "del", net.bridge, check=False)
    _state_file(name).unlink(missing_ok=True)


def find(ref: str) -> Host:
    """A host by ``net/host``, or by bare host name when exactly one net has it."""
    if "/" in ref:
        net, _, host = ref.partition("/")
        return load(net).host(host)
    found = [h for n in nets() for h in n.hosts if h.name == ref]
    if len(found) == 1:
        return found[0]
    if not found:
        raise TargetError(f"no test host named {ref!r}")
    raise TargetError(f"test host {ref!r} exists in several nets; write net/host")


def address_of(ref: str) -> str:
    """An IP address as is, or a test host's address."""
    try:
        return str(ipaddress.ip_address(ref))
    except ValueError:
        return find(ref).address


def command(host: Host, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", host.netns, *argv]


def run(host: Host, argv: Sequence[str], *, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(host, argv), capture_output=True, text=True, timeout=timeout, check=check)


def popen(host: Host, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    return subprocess.Popen(command(host, argv), **kwargs)


# --- Jepsen-style partitions --------------------------------------------------------------------

def partition(net: HostNet, groups: Sequence[Sequence[str]]) -> None:
    """Each host keeps talking only to hosts that share a group with it (a host may be in
    several groups: that is Jepsen's bridge). Replaces any previous partition of the net."""
    names = {h.name for h in net.hosts}
    for g in groups:
        for n in g:
            if n not in names:
                raise InputError(f"net {net.name!r} has no host {n!r}")
    heal(net)

    for h in net.hosts:
        reach = {n for g in groups if h.name in g for n in g}
        blocked = [o.address for o in net.hosts if o.name not in reach and o.name != h.name]
        if not blocked:
            continue
        peers = "{ " + ", ".join(blocked) + " }"
        nft(
            f"add table inet {PARTITION_TABLE}\n"
            f"add chain inet {PARTITION_TABLE} in {{ type filter hook input priority -10; policy accept; }}\n"
            f"add chain inet {PARTITION_TABLE} out {{ type filter hook output priority -10; policy accept; }}\n"
            f"add rule inet {PARTITION_TABLE} in ip saddr {peers} drop\n"
            f"add rule inet {PARTITION_TABLE} out ip daddr {peers} drop\n",
            h.netns,
        )


def isolate(net: HostNet, host: str) -> None:
    partition(net, [[host], [h.name for h in net.hosts if h.name != host]])


def halves(net: HostNet) -> None:
    names = [h.name for h in net.hosts]
    mid = (len(names) + 1) // 2
    partition(net, [names[:mid], names[mid:]])


def bridge(net: HostNet) -> None:
    """Two halves that cannot talk to each other, and one host in the middle that talks to both."""
    names = [h.name for h in net.hosts]
    if len(names) < 3:
        raise InputError("a bridge partition needs at least 3 hosts")
    mid = len(names) // 2
    partition(net, [names[: mid + 1], names[mid:]])


def heal(net: HostNet) -> None:

    for h in net.hosts:
        nft(f"delete table inet {PARTITION_TABLE}\n", h.netns, check=False)


# Reachability without ping (not installed everywhere): a TCP connect to a closed port is
# answered with a reset when the peer is reachable and times out when packets are dropped.
_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except ConnectionRefusedError:
    pass
except OSError:
    sys.exit(1)
"""


def reachable(src: Host, address: str, *, port: int = 9, timeout: float = 1.0) -> bool:
    """Whether ``src`` gets an answer from ``address`` (refused or accepted) within ``timeout``."""
    import sys

    argv = [sys.executable, "-c", _PROBE, address, str(port), str(timeout)]
    return run(src, argv, timeout=timeout + 10).returncode == 0


def wait_reachable(src: Host, dst: Host, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable(src, dst.address, timeout=1.0):
            return True
    return False


__all__ = ["Host", "HostNet", "address_of", "bridge", "command", "create", "destroy", "find", "halves",
           "heal", "isolate", "load", "nets", "partition", "popen", "reachable", "run",
           "wait_reachable"]
