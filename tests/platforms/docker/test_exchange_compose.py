"""The exchange as a Compose project (examples/exchange/compose.yaml): it comes up healthy by
Docker's own health checks, takes an order through nginx into PostgreSQL, Prometheus scrapes the
API, and catalog experiments run on it unchanged through the targets overlay
(examples/exchange/compose-targets.yaml) with short windows. Each run is watched from outside:
the nft table in PostgreSQL's network namespace, the API container's CPU quota; afterwards none of
it is left, and `down` leaves no container, network or volume of the project."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import sysconfig
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import chaoslab_argv, child_env, free_ports

from .conftest import ROOT, cgroup_file, docker, inspect, nft_tables_in, only_run_dir

EXCHANGE = ROOT / "examples" / "exchange"
PORTS = ("PG", "REDIS", "PROXY_API", "API", "NGINX", "MARKET", "ORDERFLOW", "PROMETHEUS")
SERVICES = (
    "postgres",
    "redis",
    "toxi",
    "trading-api",
    "nginx",
    "market-simulator",
    "order-flow",
    "prometheus",
)
SHORT = ("--var", "FAULT_AT=4s", "--var", "RECOVERY=8s", "--var", "RATE=20/s")


def _free_subnet() -> str:
    """A 10.231.N.0/24 no Docker network uses (10.231.0/24 is the default project's, 10.231.1-2 the
    hand-run copies')."""
    used: set[str] = set()
    for net in docker("network", "ls", "-q").split():
        for cfg in (json.loads(docker("network", "inspect", net))[0].get("IPAM") or {}).get(
            "Config"
        ) or []:
            used.add(str(cfg.get("Subnet")))
    for n in range(10, 250):
        subnet = f"10.231.{n}.0/24"
        if not any(
            ipaddress.ip_network(subnet).overlaps(ipaddress.ip_network(u)) for u in used if "." in u
        ):
            return subnet
    raise AssertionError("no free 10.231.N.0/24 subnet")


@dataclass
class ComposeExchange:
    project: str
    env: dict[str, str]
    ports: dict[str, int]

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "-p", self.project, "-f", str(EXCHANGE / "compose.yaml"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def container(self, service: str) -> dict[str, Any]:
        return inspect(f"{self.project}_{service}_1")

    def url(self, port: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}{path}"

    def run(self, experiment: str, *args: str, state: Path, runs: Path) -> subprocess.Popen[str]:
        argv = chaoslab_argv(
            "run",
            "-q",
            "--runs-dir",
            str(runs),
            "--targets",
            str(EXCHANGE / "compose-targets.yaml"),
            str(EXCHANGE / "experiments" / experiment),
            *SHORT,
            *args,
        )
        return subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**child_env(state), **self.env},
        )


def _leftovers(project: str) -> list[str]:
    left = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").split()
    left += docker("network", "ls", "-q", "--filter", f"name={project}_").split()
    left += docker("volume", "ls", "-q", "--filter", f"name={project}_").split()
    return left


@pytest.fixture(scope="module")
def exchange() -> Iterator[ComposeExchange]:
    project = "cxt" + uuid.uuid4().hex[:8]
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    env = {
        **os.environ,
        **{f"EXCHANGE_{n}_PORT": str(p) for n, p in ports.items()},
        "EXCHANGE_SUBNET": _free_subnet(),
        "EXCHANGE_PROJECT": project,
        "EXCHANGE_ORDERFLOW_RATE": "5",
        "EXCHANGE_SITE_PACKAGES": sysconfig.get_paths()["purelib"],
    }
    ex = ComposeExchange(project, env, ports)
    try:
        up = ex.compose("up", "-d")
        assert up.returncode == 0, up.stderr[-2000:]
        yield ex
    finally:
        down = ex.compose("down", "-v", "-t", "5")
        assert down.returncode == 0, down.stderr[-2000:]
        assert _leftovers(project) == []


def _wait_healthy(ex: ComposeExchange, timeout: float = 240) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        status = {
            s: (ex.container(s)["State"].get("Health") or {}).get("Status", "none")
            for s in SERVICES
        }
        if all(v == "healthy" for v in status.values()) or time.monotonic() > deadline:
            return status
        time.sleep(1)


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def _psql(ex: ComposeExchange, sql: str) -> str:
    # psql inside the PostgreSQL container: what the database itself holds, not what the API says
    return docker(
        "exec",
        "-e",
        "PGPASSWORD=trader",
        f"{ex.project}_postgres_1",
        "/usr/lib/postgresql/15/bin/psql",
        "-h",
        "127.0.0.1",
        "-U",
        "trader",
        "-d",
        "exchange",
        "-Atc",
        sql,
    )


def test_comes_up_healthy_and_takes_orders_through_nginx(exchange: ComposeExchange) -> None:
    status = _wait_healthy(exchange)
    assert set(status.values()) == {"healthy"}, status
    for s in SERVICES:
        c = exchange.container(s)
        assert c["HostConfig"]["RestartPolicy"]["Name"] == "always", s
        for bindings in c["NetworkSettings"]["Ports"].values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings or []), (s, bindings)
    coid = "cxt-" + uuid.uuid4().hex
    code, order = _post(
        exchange.url("NGINX", "/orders"),
        {
            "symbol": "BTCUSD",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": 1,
            "price": 100,
            "client_order_id": coid,
        },
    )
    assert code == 201 and order["durability"] == "committed"
    assert (
        _psql(exchange, f"select order_id from orders where client_order_id = '{coid}'")
        == order["order_id"]
    )
    deadline = time.monotonic() + 60
    while True:  # Prometheus scrapes the API every second
        with urllib.request.urlopen(
            exchange.url("PROMETHEUS", '/api/v1/query?query=up{job="trading-api"}'), timeout=5
        ) as r:
            result = json.loads(r.read())["data"]["result"]
        if (result and result[0]["value"][1] == "1") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result and result[0]["value"][1] == "1", result


def _finish(proc: subprocess.Popen[str], timeout: float = 180) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode in (0, 1), out  # a verdict (held or violated), not an error or abort
    return out


def test_partition_runs_in_postgres_netns_and_leaves_nothing(
    exchange: ComposeExchange, tmp_path: Path
) -> None:
    assert set(_wait_healthy(exchange).values()) == {"healthy"}
    pg = exchange.container("postgres")
    pid, cid = pg["State"]["Pid"], pg["Id"]
    proc = exchange.run(
        "02-network-partition.yaml",
        "--var",
        "FAULT_FOR=6s",
        state=tmp_path / "state",
        runs=tmp_path / "runs",
    )
    seen = set()
    while proc.poll() is None:
        seen.add("chaoslab_" in nft_tables_in(pid))
        time.sleep(0.3)
    _finish(proc)
    assert True in seen, "no chaoslab nft table ever appeared in PostgreSQL's network namespace"
    assert "chaoslab_" not in nft_tables_in(pid)
    assert exchange.container("postgres")["Id"] == cid
    # The API saw its database go away: its own counters, read from its /metrics
    with urllib.request.urlopen(exchange.url("API", "/metrics"), timeout=5) as r:
        metrics = r.read().decode()
    spooled = sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("orders_spooled_total")
    )
    assert spooled > 0, "no order was spooled while PostgreSQL was unreachable"
    run_dir = only_run_dir(tmp_path / "runs")
    reconcile = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "exchange_reconcile.py"),
            str(run_dir),
            "--dsn",
            f"postgresql://trader:trader@127.0.0.1:{exchange.ports['PG']}/exchange",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    counts = json.loads(reconcile.stdout)
    assert counts["acknowledged"] > 0 and counts["lost"] == 0 and counts["duplicates"] == 0, counts


def test_cpu_throttle_on_the_api_container_is_put_back(
    exchange: ComposeExchange, tmp_path: Path
) -> None:
    assert set(_wait_healthy(exchange).values()) == {"healthy"}
    cid = exchange.container("trading-api")["Id"]
    before = cgroup_file(cid, "cpu", "cpu.cfs_quota_us")
    proc = exchange.run(
        "04-cpu-throttling.yaml",
        "--var",
        "FAULT_FOR=5s",
        state=tmp_path / "state",
        runs=tmp_path / "runs",
    )
    seen = set()
    while proc.poll() is None:
        seen.add(cgroup_file(cid, "cpu", "cpu.cfs_quota_us"))
        time.sleep(0.2)
    _finish(proc)
    assert "5000" in seen, (
        seen
    )  # 0.05 core of the fault's 100 ms period, in the container's own cgroup
    assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == before
    assert exchange.container("trading-api")["Id"] == cid
