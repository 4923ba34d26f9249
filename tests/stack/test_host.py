"""A service placed on a test host runs in that host's network namespace, health-checked there."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from stack_helpers import StackFactory, free_port, listening

from chaoslab.system import hosts

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.isdir("/run"), reason="needs root (netns)"
)


@pytest.fixture
def net() -> Iterator[hosts.HostNet]:
    name = f"stk{os.getpid() % 100000}"
    try:
        n = hosts.create(name, ["n1"], subnet="10.79.41.0/24")
    except Exception as exc:  # no netns support here: nothing to test
        pytest.skip(f"cannot create test hosts: {exc}")
    try:
        yield n
    finally:
        hosts.destroy(name)


def test_service_on_a_test_host_runs_in_its_network_namespace(
    stacks: StackFactory, net: hosts.HostNet
) -> None:
    port = free_port()
    stack = stacks.load(f"""
name: onhost
services:
  cache:
    redis: {{port: {port}}}
    host: {net.name}/n1
  db:
    postgres: {{port: {port + 1 if port < 65535 else port - 1}}}
    host: {net.name}/n1
""")
    st = stack.up(timeout=60)
    host = net.host("n1")
    ns_inode = os.stat(f"/run/netns/{host.netns}").st_ino
    for name in ("cache", "db"):
        svc = st["services"][name]
        assert svc["health"] == "healthy" and svc["host_address"] == host.address
        assert os.readlink(f"/proc/{svc['pid']}/ns/net") == f"net:[{ns_inode}]"
    assert not listening(port)  # 127.0.0.1 of the root namespace is another loopback
    stack.down()
