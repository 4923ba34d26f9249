"""Test hosts (network namespaces on a bridge): the ``chaoslab hosts`` commands and the Jepsen
partition shapes (halves, bridge, isolate, heal), as the hosts themselves see them."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from chaoslab.cli.hosts import hosts as hosts_cli
from chaoslab.system import hosts

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="test hosts are network namespaces: root only"),
]


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
