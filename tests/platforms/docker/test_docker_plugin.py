"""The pytest plugin's fixtures on containers, as seed 001 writes them: service_failure by
container or Compose service name (pause, stop, kill), network_partition and resource_limit with
Docker's words, on the same ledger as ``chaoslab run``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab, cgroup_file, http_ok, inspect, journal


@pytest.fixture(autouse=True)
def _own_state(state_dir: Path) -> None:
    """The ledger of these fixtures goes to this test's own state directory."""


def test_service_failure_modes_on_a_container(
    lab: Lab, service_failure: Callable[..., Any], chaos_session: Any
) -> None:
    session = chaos_session
    name, ip = lab.web("svc", opts=("--restart", "always"))
    url = f"http://{ip}:8080/health"
    with service_failure(name, mode="pause", duration=1.5):
        assert inspect(name)["State"]["Paused"] is True and not http_ok(url, 0.5)
        time.sleep(2.0)
        assert inspect(name)["State"]["Paused"] is False and http_ok(url)  # resumed after duration
    with service_failure(name, mode="stop", timeout=0):
        assert inspect(name)["State"]["Running"] is False and not http_ok(url, 0.5)
    assert inspect(name)["State"]["Running"] is True
    before = inspect(name)["RestartCount"]
    with service_failure(name, mode="kill"):
        deadline = time.monotonic() + 20
        while inspect(name)["RestartCount"] == before and time.monotonic() < deadline:
            time.sleep(0.1)
    assert inspect(name)["RestartCount"] == before + 1  # Docker's policy restarted it
    with pytest.raises(ValueError, match="on a container"):
        service_failure(name, mode="terminate")
    # Docker's own account of it goes into the test's journal, as for `chaoslab run`
    session.finish()
    events = [
        r
        for r in journal(session.run_dir)
        if r.get("source") == "docker" and r.get("container") == name
    ]
    kinds = [e["kind"] for e in events]
    assert {"pause", "unpause", "stop", "start", "die"} <= set(kinds), kinds


def test_network_partition_and_resource_limit(
    lab: Lab, network_partition: Callable[..., Any], resource_limit: Callable[..., Any]
) -> None:
    name, ip = lab.web("np")
    url = f"http://{ip}:8080/health"
    with network_partition(name):
        assert not http_ok(url, 0.5)
    assert http_ok(url)
    cid = inspect(name)["Id"]
    quota, mem = (
        cgroup_file(cid, "cpu", "cpu.cfs_quota_us"),
        cgroup_file(cid, "memory", "memory.limit_in_bytes"),
    )
    with resource_limit(name, cpu_quota=50000, mem_limit="512m"):
        assert int(cgroup_file(cid, "cpu", "cpu.cfs_quota_us")) * 2 == int(
            cgroup_file(cid, "cpu", "cpu.cfs_period_us")
        )
        assert cgroup_file(cid, "memory", "memory.limit_in_bytes") == str(512 * 1024 * 1024)
    assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == quota
    assert cgroup_file(cid, "memory", "memory.limit_in_bytes") == mem


COMPOSE = """
version: "2.4"
services:
  kafkaish:
    image: chaoslab/busybox:1
    command: ["sleep", "600"]
    network_mode: none
"""


def test_service_failure_by_compose_service_name(
    lab: Lab, tmp_path: Path, service_failure: Callable[..., Any]
) -> None:
    import subprocess

    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    base = ["docker-compose", "-p", lab.prefix, "-f", str(tmp_path / "docker-compose.yml")]
    up = subprocess.run(
        [*base, "up", "-d", "--scale", "kafkaish=2"], capture_output=True, text=True, timeout=180
    )
    assert up.returncode == 0, up.stderr
    try:
        names = subprocess.run(
            [
                "docker",
                "ps",
                "--filter",
                f"label=com.docker.compose.project={lab.prefix}",
                "--format",
                "{{.Names}}",
            ],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert len(names) == 2
        # a name Compose gives a service in one project only: every replica of it
        other = [
            n
            for n in subprocess.run(
                [
                    "docker",
                    "ps",
                    "--filter",
                    "label=com.docker.compose.service=kafkaish",
                    "--format",
                    "{{.Names}}",
                ],
                capture_output=True,
                text=True,
            ).stdout.split()
            if n not in names
        ]
        if other:
            pytest.skip("another run has a kafkaish service right now")
        with service_failure("kafkaish", mode="pause", duration=5):
            assert all(inspect(n)["State"]["Paused"] for n in names)
        assert not any(inspect(n)["State"]["Paused"] for n in names)
    finally:
        subprocess.run([*base, "down", "-t", "0"], capture_output=True, timeout=180)
