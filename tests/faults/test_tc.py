"""tc tbf between test hosts (and its refusal to replace a qdisc it did not make), and netem's
refusal with a pointer to the proxy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chaoslab.errors import CapabilityError
from chaoslab.faults.tc import NetemLatency, TbfBandwidth, TbfParams, root_qdisc
from chaoslab.system import hosts

from .conftest import host_target, revert_elsewhere

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
