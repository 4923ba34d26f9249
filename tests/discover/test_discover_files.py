"""`chaoslab discover` and `chaoslab init` on files: the repository's own systems (the exchange
and the pipeline, as Compose files and as stack files) and two Compose applications written for
these tests (tests/discover/apps: a web app with a cache and a database, a queue with workers).
Discovery must find every service, port and dependency a person would list; init must write
suites that `chaoslab suite validate` accepts. No Docker is needed: the files are read as written.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PY, ROOT

from chaoslab.discover import discover

APPS = Path(__file__).parent / "apps"
EXCHANGE = ROOT / "examples" / "exchange"
PIPELINE = ROOT / "examples" / "pipeline"


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    from tests.conftest import SRC

    full = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run([PY, "-m", "chaoslab", *args], capture_output=True, text=True, input=stdin,
                          timeout=120, env=full, cwd=cwd)


def edges(system: Any) -> set[tuple[str, str]]:
    return {(d.source, d.target) for d in system.dependencies}


def ports(system: Any) -> dict[str, set[int]]:
    return {s.name: {p.port for p in s.ports} for s in system.services.values()}


def test_exchange_compose_every_service_port_and_dependency() -> None:
    s = discover(str(EXCHANGE / "compose.yaml"), faults=False)
    assert s.platform == "compose" and s.name == "exchange"
    assert ports(s) == {"postgres": {5432}, "redis": {6379}, "toxi": {8474}, "trading-api": {8080},
                        "nginx": {8000}, "market-simulator": {8081}, "order-flow": {8082}, "prometheus": {9090}}
    assert edges(s) == {("toxi", "postgres"), ("toxi", "redis"), ("trading-api", "toxi"),
                        ("nginx", "trading-api"), ("market-simulator", "toxi"), ("order-flow", "nginx"),
                        ("order-flow", "market-simulator"), ("order-flow", "toxi"),
                        ("prometheus", "trading-api")}
    api = s.services["trading-api"]
    assert api.restart == "always" and api.health is not None and api.health.kind == "http"
    assert [(p.published, p.http, p.path) for p in api.ports] == [(8080, True, "/health")]
    assert {n for n, v in s.services.items() if v.stateful} == {"postgres", "redis", "trading-api"}
    assert not s.services["postgres"].ports[0].http
    assert api.target == {"compose": {"project": "exchange", "service": "trading-api"}, "mode": "one"}


def test_exchange_stack_edges_through_the_proxy() -> None:
    s = discover(str(EXCHANGE / "stack.yaml"), faults=False)
    assert s.platform == "stack"
    assert set(s.services) == {"postgres", "redis", "toxi", "trading-api", "nginx", "market-simulator",
                               "order-flow", "chaos-exporter", "prometheus"}
    by = {(d.source, d.target): d for d in s.dependencies}
    assert by[("trading-api", "postgres")].proxy == {"proxy": "postgres", "api": "http://127.0.0.1:8474"}
    assert by[("trading-api", "redis")].proxy == {"proxy": "redis", "api": "http://127.0.0.1:8474"}
    assert ("nginx", "trading-api") in by and ("order-flow", "nginx") in by
    assert ("prometheus", "chaos-exporter") in by
    assert s.services["trading-api"].target == {"service": "trading-api"}
    assert {p.port for p in s.services["toxi"].ports} == {8474, 15433, 16380}


def test_pipeline_compose_addresses_name_services() -> None:
    """The pipeline's services reach each other by fixed address (10.232.0.N), not by name."""
    s = discover(str(PIPELINE / "compose.yaml"), faults=False)
    assert set(s.services) == {"s3", "postgres", "redis", "toxi", "broker", "producer", "consumer",
                               "gateway", "prometheus"}
    e = edges(s)
    for edge in [("producer", "toxi"), ("consumer", "toxi"), ("toxi", "broker"), ("toxi", "postgres"),
                 ("toxi", "redis"), ("toxi", "s3"), ("broker", "s3"), ("gateway", "producer"),
                 ("consumer", "postgres")]:
        assert edge in e, edge
    assert not s.services["toxi"].stateful  # its config names postgres; it is not one
    assert s.services["postgres"].stateful and s.services["s3"].stateful
    assert s.services["redis"].ports[0].host == "10.232.0.12"  # not published: its own address


def test_pipeline_stack_through_the_proxy() -> None:
    s = discover(str(PIPELINE / "stack.yaml"), faults=False)
    proxied = {(d.source, d.target): d.proxy["proxy"] for d in s.dependencies if d.proxy}
    assert proxied == {("producer", "broker"): "kafka", ("consumer", "broker"): "kafka",
                       ("consumer", "postgres"): "postgres", ("consumer", "redis"): "redis",
                       ("consumer", "s3"): "s3", ("broker", "s3"): "s3"}


def test_shop_app() -> None:
    s = discover(str(APPS / "shop" / "compose.yaml"), faults=False)
    assert s.name == "shop"
    assert ports(s) == {"web": {8080}, "cache": {6379}, "db": {6379}}
    assert edges(s) == {("web", "db"), ("web", "cache")}
    vias = {d.target: d.via for d in s.dependencies}
    assert vias == {"db": "depends_on, env DATABASE_URL", "cache": "depends_on, env CACHE_URL"}
    assert s.services["db"].restart == "on-failure"
    assert s.services["db"].state[0] == "volume dbdata at /data"
    assert s.services["web"].ports[0].url() == "http://127.0.0.1:18080/"


def test_jobs_app_replicas_and_blast_radius() -> None:
    s = discover(str(APPS / "jobs" / "compose.yaml"), faults=False)
    assert edges(s) == {("producer", "queue"), ("worker", "queue")}
    worker = s.services["worker"]
    assert worker.replicas == 2
    # mode one refuses two containers: a scaled service is hit one container at a time
    assert worker.target["mode"] == "count:1"
    assert any("producer: no health check" in a for a in s.advice())


@pytest.mark.parametrize("source", [
    EXCHANGE / "compose.yaml", EXCHANGE / "stack.yaml", PIPELINE / "compose.yaml", PIPELINE / "stack.yaml",
    APPS / "shop" / "compose.yaml", APPS / "jobs" / "compose.yaml",
], ids=["exchange-compose", "exchange-stack", "pipeline-compose", "pipeline-stack", "shop", "jobs"])
def test_init_writes_a_suite_that_validates(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "suite"
    r = cli("init", str(source), "-o", str(out))
    assert r.returncode == 0, r.stderr
    v = cli("suite", "validate", str(out / "suite.yaml"))
    assert v.returncode == 0, v.stderr
    files = sorted((out / "experiments").glob("*.yaml"))
    assert f"({len(files)} experiments)" in v.stdout
    text = "\n".join(f.read_text() for f in files)
    # nothing destructive unless asked
    assert "container.remove" not in text and "disk.fill" not in text
    kinds = {"compose": "container.kill", "stack": "process.kill"}
    assert kinds["stack" if source.name == "stack.yaml" else "compose"] in text
    # the stateful services' data checks wait in todo/, and validate names what is missing
    todo = sorted((out / "todo").glob("*.yaml"))
    assert todo
    t = cli("validate", str(todo[0]))
    assert t.returncode == 2 and "WRITE_URL" in t.stderr and len(t.stderr.strip().splitlines()) == 1


def test_init_exchange_stack_latency_on_the_proxied_edge(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert cli("init", str(EXCHANGE / "stack.yaml"), "-o", str(out)).returncode == 0
    f = next((out / "experiments").glob("*trading-api-to-postgres-latency.yaml"))
    text = f.read_text()
    assert "fault: network.latency" in text and "postgres-link: {proxy: postgres" in text
    stack_ref = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("stack:"))
    assert (f.parent / stack_ref).resolve() == (EXCHANGE / "stack.yaml").resolve()


def test_kill_without_restart_policy_says_it_expects_a_finding(tmp_path: Path) -> None:
    compose = tmp_path / "app" / "compose.yaml"
    compose.parent.mkdir()
    compose.write_text("services:\n  api:\n    image: chaoslab/busybox:1\n    ports: ['127.0.0.1:18081:8080']\n")
    out = tmp_path / "out"
    r = cli("init", str(compose), "-o", str(out))
    assert r.returncode == 0, r.stderr
    kill = (out / "experiments" / "01-api-kill.yaml").read_text()
    assert "# FINDING expected: api has no restart policy" in kill
    assert "time_to_recovery: {max: 30s}" in kill
    assert "api: no restart policy" in r.stdout and "api: no health check" in r.stdout


def test_discover_json_and_table() -> None:
    r = cli("discover", str(APPS / "shop" / "compose.yaml"), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data["services"]) == {"web", "cache", "db"}
    assert data["services"]["db"]["stateful"] is True
    assert "container.kill" in data["services"]["web"]["faults"] or data["services"]["web"]["faults"] == []
    assert {(d["source"], d["target"]) for d in data["dependencies"]} == {("web", "db"), ("web", "cache")}
    t = cli("discover", str(APPS / "shop" / "compose.yaml"))
    assert t.returncode == 0 and "web -> db  (depends_on, env DATABASE_URL port 6379)" in t.stdout


def test_bad_sources_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  web:\n    image: x\n    ports: [8080\n  db: {image: y}\n")
    cases = {
        "missing": (["discover", str(tmp_path / "nope.yaml")], "nope.yaml: no such file"),
        "syntax": (["discover", str(bad)], "compose.yaml:"),
        "a directory": (["discover", str(APPS / "jobs")], "is a directory"),
        "not a system": (["init", str(ROOT / "examples" / "containers" / "pause-under-load.yaml"), "-o",
                          str(tmp_path / "o")], "neither a Compose file nor a stack file"),
        "docker down": (["discover", "compose:nothing-here"], "Docker is not reachable"),
    }
    for name, (args, expected) in cases.items():
        env = {"DOCKER_HOST": f"unix://{tmp_path}/no.sock"} if name == "docker down" else None
        r = cli(*args, env=env)
        assert r.returncode == 2, (name, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (name, r.stderr)
        assert "Traceback" not in r.stderr


def test_unreachable_kubernetes_api_one_line(tmp_path: Path) -> None:
    from tests.conftest import free_port

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{free_port()}"}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
users: [{{name: u, user: {{}}}}]
""")
    r = cli("discover", "k8s:shop", "--kubeconfig", str(kubeconfig))
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "API server did not answer" in r.stderr


def test_interactive_init_from_stdin(tmp_path: Path) -> None:
    out = tmp_path / "first.yaml"
    answers = "compose\nshop\nweb\nhttp://127.0.0.1:18080/\ncontainer.pause\n5s\n20\n"
    r = cli("init", "-o", str(out), stdin=answers)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "fault: container.pause" in text and "duration: 5s" in text
    assert "rate: 20/s" in text and "error_rate.baseline: {max: 0.01}" in text
    assert "compose: {project: shop, service: web}" in text
    v = cli("validate", str(out))
    assert v.returncode == 0, v.stderr


def test_a_database_port_is_probed_with_a_request_it_must_answer(tmp_path: Path) -> None:
    """A connect is completed by the kernel while a server is frozen, so a known database's port
    gets a request only the running server answers (PING for Redis, SSLRequest for PostgreSQL)."""
    import yaml

    def tcp_probes(source: Path, experiment: str) -> list[dict[str, Any]]:
        out = tmp_path / source.parent.name
        assert cli("init", str(source), "-o", str(out)).returncode == 0
        doc = yaml.safe_load(next((out / "experiments").glob(experiment)).read_text())
        return [p["tcp"] for p in doc["probes"].values() if "tcp" in p]

    assert tcp_probes(APPS / "shop" / "compose.yaml", "*db-pause.yaml") == [
        {"host": "127.0.0.1", "port": 16379, "send": "PING\r\n", "reply": r"\+PONG"}]
    (pg,) = tcp_probes(EXCHANGE / "stack.yaml", "*postgres-pause.yaml")
    assert pg["send"].encode("latin-1") == b"\x00\x00\x00\x08\x04\xd2\x16\x2f" and pg["reply"] == "[SN]"
