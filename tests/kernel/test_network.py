"""nftables partition and loss (loopback ports and between test hosts), tc tbf between test
hosts, and netem's refusal."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from chaoslab import hosts
from chaoslab.errors import CapabilityError, FaultError
from chaoslab.faults.netfilter import (
    LossParams,
    NetParams,
    NetworkLoss,
    NetworkPartition,
)
from chaoslab.faults.tc import NetemLatency, TbfBandwidth, TbfParams, root_qdisc
from chaoslab.hosts_cli import hosts as hosts_cli
from chaoslab.nft import table_name
from chaoslab.targets import ResolvedTarget

from .conftest import audit, revert_elsewhere


def address_target(addr: str, port: int | None = None) -> ResolvedTarget:
    return ResolvedTarget(
        name="svc",
        kind="address",
        spec={"address": addr},
        address=addr,
        ports=[port] if port else [],
    )


def host_target(net: hosts.HostNet, name: str) -> ResolvedTarget:
    ref = f"{net.name}/{name}"
    return ResolvedTarget(name=name, kind="host", spec={"host": ref}, address=ref)


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


SINK = """
import socket, sys, time
srv = socket.socket()
srv.bind((sys.argv[1], 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
total, first, last = 0, None, None
while True:
    data = conn.recv(65536)
    if not data:
        break
    now = time.monotonic()
    if first is None:
        first = now
    total += len(data)
    last = now
print(total, last - first, flush=True)
"""

SOURCE = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
chunk = b"x" * 16384
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    c.sendall(chunk)
c.close()
"""


def throughput(a: hosts.Host, b: hosts.Host, seconds: float) -> float:
    """Bytes per second a sends to b over TCP, measured at b."""
    sink = hosts.popen(
        b, [sys.executable, "-c", SINK, b.address], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sink.stdout is not None
        port = sink.stdout.readline().strip()
        hosts.run(
            a, [sys.executable, "-c", SOURCE, b.address, port, str(seconds)], timeout=60, check=True
        )
        total, span = sink.stdout.readline().split()
        return int(total) / float(span)
    finally:
        sink.kill()
        sink.wait()
        if sink.stdout:
            sink.stdout.close()


def test_tbf_limits_throughput_between_test_hosts(hostnet: hosts.HostNet, run_id: str) -> None:
    a, b = hostnet.host("a"), hostnet.host("b")
    fault = TbfBandwidth(TbfParams(rate="8mbit"), host_target(hostnet, "a"), run_id=run_id)
    TbfBandwidth.check()
    fault.inject()
    try:
        assert (root_qdisc("eth0", a.netns) or {}).get("kind") == "tbf"
        rate = throughput(a, b, 3.0)
    finally:
        revert_elsewhere(fault)
    print(f"network.bandwidth.tc 8mbit (1.0 MB/s): measured {rate / 1e6:.3f} MB/s")
    assert 0.8e6 <= rate <= 1.2e6
    assert (root_qdisc("eth0", a.netns) or {}).get("kind") != "tbf"
    assert throughput(a, b, 0.5) > 5e6  # back to unshaped


def test_tbf_refuses_to_replace_a_foreign_qdisc(hostnet: hosts.HostNet, run_id: str) -> None:
    a = hostnet.host("a")
    hosts.run(
        a,
        [
            "tc",
            "qdisc",
            "add",
            "dev",
            "eth0",
            "root",
            "handle",
            "1:",
            "tbf",
            "rate",
            "1mbit",
            "burst",
            "32kbit",
            "latency",
            "50ms",
        ],
        check=True,
    )
    fault = TbfBandwidth(TbfParams(rate="8mbit"), host_target(hostnet, "a"), run_id=run_id)
    with pytest.raises(Exception, match="refusing to replace"):
        fault.inject()
    fault.revert()  # not ours: left alone
    assert (root_qdisc("eth0", a.netns) or {}).get("handle") == "1:"


def test_netem_refuses_with_a_pointer_to_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSLAB_DOCTOR_DENY", "tc.netem")
    with pytest.raises(CapabilityError) as info:
        NetemLatency.check()
    assert "netem" in info.value.reason
    assert info.value.instead is not None and "network.latency" in info.value.instead
    assert info.value.exit_code == 4


def test_hosts_cli(run_id: str) -> None:
    from click.testing import CliRunner

    name = "c" + run_id[-8:]
    runner = CliRunner()
    try:
        up = runner.invoke(hosts_cli, ["up", name, "--hosts", "x,y,z", "--subnet", "10.231.9.0/24"])
        assert up.exit_code == 0, up.output
        assert f"{name}/x  10.231.9.1" in up.output
        net = hosts.load(name)
        assert hosts.wait_reachable(net.host("x"), net.host("z"))
        assert runner.invoke(hosts_cli, ["partition", name, "--isolate", "x"]).exit_code == 0
        assert not hosts.reachable(net.host("x"), "10.231.9.3", timeout=0.5)
        assert hosts.reachable(net.host("y"), "10.231.9.3")
        assert runner.invoke(hosts_cli, ["partition", name, "--heal"]).exit_code == 0
        assert hosts.reachable(net.host("x"), "10.231.9.3")
        bad = runner.invoke(hosts_cli, ["partition", name])
        assert bad.exit_code == 2 and "exactly one" in bad.output
        ran = runner.invoke(hosts_cli, ["run", f"{name}/y", "true"])
        assert ran.exit_code == 0
    finally:
        assert runner.invoke(hosts_cli, ["down", name]).exit_code == 0
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert name not in netns
    assert name not in textwrap.dedent(
        subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
    )


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


def test_jepsen_partitions(run_id: str) -> None:
    name = "j" + run_id[-8:]
    net = hosts.create(name, ["n1", "n2", "n3", "n4", "n5"], subnet="10.231.8.0/24")
    try:
        h = {x.name: x for x in net.hosts}

        def talks(x: str, y: str) -> bool:
            return hosts.reachable(h[x], h[y].address, timeout=0.5)

        assert hosts.wait_reachable(h["n1"], h["n5"])
        hosts.halves(net)  # n1 n2 n3 | n4 n5
        assert talks("n1", "n3") and talks("n4", "n5")
        assert not talks("n1", "n4") and not talks("n5", "n3")
        hosts.bridge(net)  # n1 n2 n3 | n3 n4 n5: n3 talks to everyone
        assert talks("n3", "n1") and talks("n3", "n5") and talks("n1", "n3")
        assert not talks("n1", "n5") and not talks("n4", "n2")
        hosts.isolate(net, "n2")
        assert not talks("n2", "n1") and not talks("n3", "n2") and talks("n1", "n5")
        hosts.heal(net)
        assert talks("n2", "n5") and talks("n1", "n4")
    finally:
        hosts.destroy(name)
    assert (
        name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )


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
