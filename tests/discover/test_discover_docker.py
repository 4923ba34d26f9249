"""A running Compose project through the Docker SDK, on the two applications written for these
tests (tests/discover/apps): discover what runs, init a suite from it, and run one generated
experiment per application to its verdict, with nothing left behind (no paused container, no
nftables table, an empty fault ledger). Local images only (scripts/images.sh)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import PY, ROOT, free_ports

from .test_discover_files import APPS, cli

pytestmark = [pytest.mark.docker, pytest.mark.root, pytest.mark.slow]


@pytest.fixture(autouse=True, scope="module")
def _docker_ready() -> None:
    if os.geteuid() != 0:
        pytest.skip("Docker tests need root")
    from chaoslab.system import capabilities

    if not capabilities.check("docker").ok:
        subprocess.run(["bash", str(ROOT / "scripts" / "docker.sh")], capture_output=True, timeout=300)
        capabilities._run.cache_clear()
    check = capabilities.check("docker")
    if not check.ok:
        pytest.skip(check.detail)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"images.sh failed: {proc.stderr[-300:]}")


class App:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.file = APPS / name / "compose.yaml"
        self.project = f"dsc{name}{uuid.uuid4().hex[:6]}"
        self.env = {**os.environ, **env}

    def compose(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker-compose", "-p", self.project, "-f", str(self.file), *args],
                              capture_output=True, text=True, timeout=timeout, env=self.env)

    def containers(self) -> list[dict[str, object]]:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"],
                             capture_output=True, text=True, timeout=30).stdout.split()
        if not ids:
            return []
        out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, timeout=30).stdout
        return list(json.loads(out))

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cs = self.containers()
            if cs and all(c["State"]["Running"] and (c["State"].get("Health") or {}).get("Status", "healthy") == "healthy"  # type: ignore[index]
                          for c in cs):
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.project} not healthy within {timeout}s")


def _subnet() -> str:
    return f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"


@pytest.fixture
def shop() -> Iterator[App]:
    web, db = free_ports(2)
    app = App("shop", {"SHOP_WEB_PORT": str(web), "SHOP_DB_PORT": str(db), "SHOP_SUBNET": _subnet()})
    try:
        up = app.compose("up", "-d")
        assert up.returncode == 0, up.stderr[-500:]
        app.wait_healthy()
        yield app
    finally:
        app.compose("down", "-v", "-t", "0")


@pytest.fixture
def jobs() -> Iterator[App]:
    (queue,) = free_ports(1)
    app = App("jobs", {"JOBS_QUEUE_PORT": str(queue), "JOBS_SUBNET": _subnet()})
    try:
        up = app.compose("up", "-d")
        assert up.returncode == 0, up.stderr[-500:]
        app.wait_healthy()
        yield app
    finally:
        app.compose("down", "-v", "-t", "0")


def _run_and_check_clean(app: App, experiment: Path, runs: Path) -> dict[str, object]:
    state = runs.parent / "state"
    env = {"CHAOSLAB_STATE_DIR": str(state)}
    dry = cli("run", "--dry-run", str(experiment), env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"container {app.project}_" in dry.stdout  # the fault's resolved target is listed
    r = cli("run", "-q", "--runs-dir", str(runs), str(experiment), env=env)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert "verdict:" in r.stdout
    run_dir = next(d for d in runs.iterdir() if d.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    # nothing left behind: no container paused, every one running again, no fault in the ledger
    app.wait_healthy(60)
    assert not any(c["State"]["Paused"] for c in app.containers())  # type: ignore[index]
    left = cli("recover", "--list", env=env)
    assert app.project not in left.stdout and "inject" not in left.stdout, left.stdout
    return summary


def test_shop_live_discover_init_and_one_run(shop: App, tmp_path: Path) -> None:
    r = cli("discover", f"compose:{shop.project}", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["live"] is True and set(data["services"]) == {"web", "cache", "db"}
    web = data["services"]["web"]
    assert web["running"] == 1 and web["restart"] == "always"
    assert [(p["port"], p["published"], p["http"]) for p in web["ports"]] == [(8080, int(shop.env["SHOP_WEB_PORT"]), True)]
    # the Compose file (found through the labels) gives depends_on; the env gives the ports
    deps = {(d["source"], d["target"]): d["via"] for d in data["dependencies"]}
    assert deps == {("web", "db"): "depends_on, env DATABASE_URL", ("web", "cache"): "depends_on, env CACHE_URL"}
    assert data["services"]["db"]["stateful"] and "container.kill" in web["faults"]

    out = tmp_path / "suite"
    init = cli("init", f"compose:{shop.project}", "-o", str(out), "--measure", "3s",
               "--load", f"http://127.0.0.1:{shop.env['SHOP_WEB_PORT']}/")
    assert init.returncode == 0, init.stderr
    v = cli("suite", "validate", str(out / "suite.yaml"))
    assert v.returncode == 0, v.stderr
    kill = out / "experiments" / "01-web-kill.yaml"
    text = kill.read_text()
    assert "# measured" in text and "error_rate.baseline" in text  # bounds from what was seen
    summary = _run_and_check_clean(shop, kill, tmp_path / "runs")
    assert summary.get("verdict") in (None, "held", "violated")


def test_jobs_live_worker_pause_one_of_two(jobs: App, tmp_path: Path) -> None:
    r = cli("discover", f"compose:{jobs.project}", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["services"]["worker"]["replicas"] == 2 and data["services"]["worker"]["running"] == 2
    assert {(d["source"], d["target"]) for d in data["dependencies"]} == {("producer", "queue"), ("worker", "queue")}
    out = tmp_path / "suite"
    init = cli("init", f"compose:{jobs.project}", "-o", str(out))
    assert init.returncode == 0, init.stderr
    assert cli("suite", "validate", str(out / "suite.yaml")).returncode == 0
    pause = next((out / "experiments").glob("*worker-pause.yaml"))
    assert 'mode: count:1' in pause.read_text()
    _run_and_check_clean(jobs, pause, tmp_path / "runs")


def _reaches(container: str, host: str, port: int) -> bool:
    code = f"import socket; socket.create_connection(({host!r}, {port}), timeout=1).close()"
    return subprocess.run(["docker", "exec", container, "python3", "-c", code],
                          capture_output=True, timeout=30).returncode == 0


def test_shop_partition_acts_in_the_dependents_namespace(shop: App, tmp_path: Path) -> None:
    """The generated web -> db partition is a rule in web's network namespace on db's port: while it
    holds, web cannot reach db, yet web still reaches cache and cache still reaches db (the edge and
    nothing else); afterwards web reaches db again and no rule is left in web's namespace."""
    out = tmp_path / "suite"
    assert cli("init", f"compose:{shop.project}", "-o", str(out)).returncode == 0
    # a running project's memory in use is read without --measure: the limit presses, not a guess
    assert "MB in use; the limit is 110% of it" in next((out / "experiments").glob("*web-memory-limit.yaml")).read_text()
    exp = next((out / "experiments").glob("*web-to-db-partition.yaml"))
    step = next(s for s in yaml_steps(exp) if s["fault"] == "network.partition")
    assert step["target"] == "web" and step["peer_ports"] == [6379], step
    web, cache = (f"{shop.project}_{s}_1" for s in ("web", "cache"))
    assert _reaches(web, "db", 6379) and _reaches(cache, "db", 6379)

    from tests.conftest import SRC

    state, runs = tmp_path / "state", tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(SRC), "CHAOSLAB_STATE_DIR": str(state)}
    run = subprocess.Popen([PY, "-m", "chaoslab", "run", "-q", "--runs-dir", str(runs), str(exp)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while _reaches(web, "db", 6379):
            assert run.poll() is None and time.monotonic() < deadline, "the partition never cut web -> db"
            time.sleep(0.2)
        # inside the fault window (10 s): the edge's neighbours still talk
        assert _reaches(web, "cache", 6379)
        assert _reaches(cache, "db", 6379)
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode in (0, 1) and "verdict:" in output, output
    assert _reaches(web, "db", 6379)
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", web], capture_output=True, text=True,
                         timeout=30).stdout.strip()
    tables = subprocess.run(["nsenter", "-t", pid, "-n", "nft", "list", "tables"], capture_output=True,
                            text=True, timeout=30)
    assert tables.returncode == 0 and "chaoslab" not in tables.stdout, tables.stdout + tables.stderr
    assert "inject" not in cli("recover", "--list", env={"CHAOSLAB_STATE_DIR": str(state)}).stdout


def yaml_steps(path: Path) -> list[dict[str, object]]:
    import yaml

    doc = yaml.safe_load(path.read_text())
    return [s for phase in ("steps", "faults", "method") for s in (doc.get(phase) or [])]
