"""Fixtures for the tests on the real dockerd: the offline images, a unique name prefix per test,
a network of the test's own on an explicit 10.x subnet, containers removed whatever happens."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.root)


_ready: str | None = None


@pytest.fixture(autouse=True)
def _docker_ready() -> None:
    """Skip with the doctor's reason only where dockerd cannot run; build the images once."""
    global _ready
    if os.geteuid() != 0:
        pytest.skip("Docker tests need root")
    if _ready is None:
        from chaoslab.system import capabilities

        check = capabilities.check("docker")
        if not check.ok:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "docker.sh")], capture_output=True, timeout=300
            )
            capabilities._run.cache_clear()
            check = capabilities.check("docker")
        if not check.ok:
            _ready = check.detail
        else:
            proc = subprocess.run(
                ["bash", str(ROOT / "scripts" / "images.sh")],
                capture_output=True,
                text=True,
                timeout=300,
            )
            _ready = "" if proc.returncode == 0 else f"images.sh failed: {proc.stderr[-300:]}"
    if _ready:
        pytest.skip(_ready)


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def inspect(name: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(docker("inspect", name))
    return data[0]


def chaoslab(*args: str) -> list[str]:
    return [sys.executable, "-m", "chaoslab.cli.main", *args]


class Lab:
    """What one test creates in Docker, all named ``<prefix>-...`` and removed at teardown."""

    def __init__(self) -> None:
        self.prefix = "clt" + uuid.uuid4().hex[:8]
        self.network: str | None = None
        self.subnet: str | None = None
        self._next_ip = 10

    def net(self) -> str:
        if self.network is None:
            for _ in range(20):
                subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
                name = f"{self.prefix}-net"
                proc = subprocess.run(
                    ["docker", "network", "create", "--subnet", subnet, name],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                if proc.returncode == 0:
                    self.network, self.subnet = name, subnet
                    break
            else:
                raise AssertionError("no free 10.x subnet for a test network")
        assert self.network is not None
        return self.network

    def ip(self) -> str:
        self.net()
        assert self.subnet is not None
        self._next_ip += 1
        return self.subnet.rsplit(".", 1)[0] + f".{self._next_ip}"

    def run(
        self,
        suffix: str,
        *argv: str,
        image: str = "chaoslab/busybox:1",
        opts: tuple[str, ...] = (),
        network: bool = False,
    ) -> tuple[str, str | None]:
        """Start ``<prefix>-<suffix>``; returns (name, ip) (ip only on the test's network)."""
        name = f"{self.prefix}-{suffix}"
        args = ["run", "-d", "--name", name, "--label", f"chaoslab.test={self.prefix}", *opts]
        ip = None
        if network:
            ip = self.ip()
            args += ["--network", self.net(), "--ip", ip]
        else:
            args += ["--network", "none"]
        docker(*args, image, *argv)
        return name, ip

    def web(self, suffix: str, opts: tuple[str, ...] = ()) -> tuple[str, str]:
        """busybox httpd on port 8080 of its own address on the test's network."""
        name, ip = self.run(
            suffix, "httpd", "-f", "-p", "8080", "-h", "/www", opts=opts, network=True
        )
        assert ip is not None
        wait_http(f"http://{ip}:8080/health")
        return name, ip

    def close(self) -> None:
        ids = docker(
            "ps", "-aq", "--filter", f"label=chaoslab.test={self.prefix}", check=False
        ).split()
        ids += docker("ps", "-aq", "--filter", f"name={self.prefix}", check=False).split()
        if ids:
            docker("rm", "-f", *sorted(set(ids)), check=False)
        if self.network:
            docker("network", "rm", self.network, check=False)


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


def http_ok(url: str, timeout: float = 1.0) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url, 0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def wait_healthy(container: str, timeout: float = 60.0) -> None:
    """Until Docker's own health check calls ``container`` healthy (an answer to one request is
    not yet a warm service on a busy machine)."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = (inspect(container)["State"].get("Health") or {}).get("Status")
        if status == "healthy":
            return
        time.sleep(0.2)
    raise AssertionError(f"{container} not healthy within {timeout}s (last: {status})")


def nft_tables_in(pid: int) -> str:
    """nft tables of a container's network namespace, read from the kernel."""
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "nft", "list", "tables"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout


def qdisc_in(pid: int, dev: str = "eth0") -> str:
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "tc", "qdisc", "show", "dev", dev],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout


def cgroup_file(cid: str, controller: str, knob: str) -> str:
    return Path(f"/sys/fs/cgroup/{controller}/docker/{cid}/{knob}").read_text().strip()


def journal(run_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (run_dir / "journal.jsonl").read_text().splitlines()
        if line.strip()
    ]


def only_run_dir(runs: Path) -> Path:
    dirs = [d for d in runs.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]
