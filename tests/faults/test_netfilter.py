"""nftables partition and loss, on loopback ports and between test hosts."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from tests.conftest import audit

from chaoslab.errors import FaultError
from chaoslab.faults.netfilter import (
    LossParams,
    NetParams,
    NetworkLoss,
    NetworkPartition,
)
from chaoslab.system import hosts
from chaoslab.system.nft import table_name
from chaoslab.targets import ResolvedTarget

from .conftest import host_target, revert_elsewhere


def address_target(addr: str, port: int | None = None) -> ResolvedTarget:
    return ResolvedTarget(
        name="svc",
        kind="address",
        spec={"address": addr},
        address=addr,
        ports=[port] if port else [],
    )



@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


def connects(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except TimeoutError:
        return False


def test_partition_of_a_loopback_port_times_out_and_heals(listener: int, run_id: str) -> None:
    with socket.socket() as other:  # a second port on the same address is not affected
        other.bind(("127.0.0.1", 0))
        other.listen(8)
        other_port = other.getsockname()[1]
        assert connects(listener)
        fault = NetworkPartition(NetParams(), address_target("127.0.0.1", listener), run_id=run_id)
        NetworkPartition.check()
        fault.inject()
        t0 = time.monotonic()
        assert not connects(listener, timeout=1.0)
        assert time.monotonic() - t0 >= 0.9  # a timeout, not a refusal
        assert connects(other_port)
        revert_elsewhere(fault)
        assert connects(listener)
    audit(run_id)


def test_two_faults_share_the_run_table(listener: int, run_id: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))  # a port of ours: rules never match anyone else's traffic
        _two_faults(listener, other.getsockname()[1], run_id)


def _two_faults(port_a: int, port_b: int, run_id: str) -> None:
    a = NetworkPartition(
        NetParams(direction="ingress"), address_target("127.0.0.1", port_a), run_id=run_id
    )
    b = NetworkLoss(LossParams(percent=10), address_target("127.0.0.1", port_b), run_id=run_id)
    a.inject()
    b.inject()
    a.revert()
    out = subprocess.run(
        ["nft", "list", "table", "inet", table_name(run_id)], capture_output=True, text=True
    )
    assert out.returncode == 0 and "numgen" in out.stdout and "drop" in out.stdout
    b.revert()
    audit(run_id)


def test_partition_between_test_hosts(hostnet: hosts.HostNet, run_id: str) -> None:
    a, b = hostnet.host("a"), hostnet.host("b")
    fault = NetworkPartition(
        NetParams(peers=[f"{hostnet.name}/b"]), host_target(hostnet, "a"), run_id=run_id
    )
    fault.inject()
    assert not hosts.reachable(b, a.address, timeout=1.0)
    assert not hosts.reachable(a, b.address, timeout=1.0)
    revert_elsewhere(fault)
    assert hosts.reachable(b, a.address)
    audit(run_id, netns=[a.netns])


def test_partition_from_the_dependents_side_cuts_one_edge(hostnet: hosts.HostNet, run_id: str) -> None:
    """In the dependent's namespace, peer_ports cut its connections to the dependency's port and
    nothing else: another port of the same peer, and the peer reaching the dependent, still work."""
    a, b = hostnet.host("a"), hostnet.host("b")
    assert hosts.reachable(a, b.address, port=5432)
    fault = NetworkPartition(
        NetParams(peers=[f"{hostnet.name}/b"], peer_ports=[5432]), host_target(hostnet, "a"), run_id=run_id
    )
    fault.inject()
    try:
        assert not hosts.reachable(a, b.address, port=5432, timeout=1.0)  # the edge: cut
        assert hosts.reachable(a, b.address, port=6379)  # the same peer's other port
        assert hosts.reachable(b, a.address, port=5432)  # b's own connections to a
    finally:
        revert_elsewhere(fault)
    assert hosts.reachable(a, b.address, port=5432)
    audit(run_id, netns=[a.netns])


def test_peer_ports_alone_scope_a_loopback_rule(listener: int, run_id: str) -> None:
    """On loopback, peer ports are a scope of their own: the rule is taken, not refused as
    "all loopback traffic", and it cuts connections to that port only."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(8)
        fault = NetworkPartition(NetParams(peer_ports=[listener]), address_target("127.0.0.1"), run_id=run_id)
        fault.inject()
        try:
            assert not connects(listener, timeout=1.0)
            assert connects(other.getsockname()[1])
        finally:
            fault.revert()
        assert connects(listener)
    audit(run_id)


RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)  # a slow reader loses nothing
s.bind((sys.argv[1], 0))
print(s.getsockname()[1], flush=True)
s.settimeout(2.0)
seen = set()
try:
    while True:
        data = s.recv(64)
        if data == b"end":
            break
        seen.add(int(data))
except TimeoutError:
    pass
print(len(seen), flush=True)
"""

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

def send(data):
    try:
        s.sendto(data, (sys.argv[1], int(sys.argv[2])))
    except PermissionError:
        pass  # dropped on this host's output hook: the kernel says EPERM

for i in range(int(sys.argv[3])):
    send(str(i).encode())
    if i % 50 == 0:
        time.sleep(0.002)  # stay below the receiver's buffer
for _ in range(5):
    send(b"end")
"""


def udp_delivery(sender: list[str], receiver: list[str], address: str, count: int) -> float:
    recv = subprocess.Popen(
        [*receiver, sys.executable, "-c", RECEIVER, address], stdout=subprocess.PIPE, text=True
    )
    try:
        assert recv.stdout is not None
        port = recv.stdout.readline().strip()
        subprocess.run(
            [*sender, sys.executable, "-c", SENDER, address, port, str(count)],
            check=True,
            timeout=60,
        )
        got = int(recv.stdout.readline())
        return got / count
    finally:
        recv.kill()
        recv.wait()
        if recv.stdout:
            recv.stdout.close()


def test_loss_between_test_hosts_drops_about_30_percent(
    hostnet: hosts.HostNet, run_id: str
) -> None:
    a, b = hostnet.host("a"), hostnet.host("b")
    na, nb = hosts.command(a, []), hosts.command(b, [])
    assert udp_delivery(na, nb, b.address, 500) > 0.97
    fault = NetworkLoss(
        LossParams(percent=30, direction="ingress"), host_target(hostnet, "b"), run_id=run_id
    )
    NetworkLoss.check()
    fault.inject()
    try:
        delivered = udp_delivery(na, nb, b.address, 3000)
    finally:
        revert_elsewhere(fault)
    print(
        f"network.loss 30% between test hosts: {100 * (1 - delivered):.1f}% of 3000 UDP probes lost"
    )
    assert 0.20 <= 1 - delivered <= 0.40
    assert udp_delivery(na, nb, b.address, 500) > 0.97
    audit(run_id, netns=[b.netns])


def test_loss_on_loopback_counts_each_packet_once(run_id: str) -> None:
    # Loopback packets pass both the output and the input hook: judged once, 30% stays 30%.
    # The rule names our own port: nobody else's loopback traffic is touched.
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    fault = NetworkLoss(
        LossParams(percent=30), address_target("127.0.0.1", sink.getsockname()[1]), run_id=run_id
    )
    fault.inject()
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.settimeout(0.5)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
        n, got = 3000, 0
        for i in range(n):
            probe.sendto(b"%d" % i, sink.getsockname())
        try:
            while True:
                sink.recv(64)
                got += 1
        except TimeoutError:
            pass
        probe.close()
        sink.close()
    finally:
        fault.revert()
    lost = 1 - got / n
    print(f"network.loss 30% on loopback: {100 * lost:.1f}% of {n} UDP probes lost")
    assert 0.20 <= lost <= 0.40
    audit(run_id)


def test_one_way_partition_between_test_hosts(hostnet: hosts.HostNet, run_id: str) -> None:
    a, b = hostnet.host("a"), hostnet.host("b")
    na, nb = hosts.command(a, []), hosts.command(b, [])
    fault = NetworkPartition(
        NetParams(direction="egress", peers=[b.address]), host_target(hostnet, "a"), run_id=run_id
    )
    fault.inject()
    try:
        assert udp_delivery(na, nb, b.address, 200) == 0  # a -> b: cut
        assert udp_delivery(nb, na, a.address, 200) > 0.97  # b -> a: flows
    finally:
        fault.revert()
    assert udp_delivery(na, nb, b.address, 200) > 0.97
    audit(run_id, netns=[a.netns])


def test_partition_of_an_ipv6_loopback_port(run_id: str) -> None:
    with socket.socket(socket.AF_INET6) as srv:
        srv.bind(("::1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]

        def ok() -> bool:
            try:
                with socket.create_connection(("::1", port), timeout=0.8):
                    return True
            except TimeoutError:
                return False

        assert ok()
        fault = NetworkPartition(NetParams(), address_target("::1", port), run_id=run_id)
        fault.inject()
        try:
            assert not ok()
        finally:
            fault.revert()
        assert ok()
    audit(run_id)


def test_loopback_without_a_port_is_refused(run_id: str) -> None:
    fault = NetworkPartition(NetParams(), address_target("127.0.0.1"), run_id=run_id)
    with pytest.raises(FaultError, match="give ports"):
        fault.inject()
    audit(run_id)
