"""pytest plugin: chaos fixtures, markers and reports (registered through the `pytest11` entry point).

    @pytest.mark.chaos_database
    def test_api_survives_a_db_pause(chaos_load, service_failure):
        load = chaos_load(url="http://127.0.0.1:8080/orders", method="POST", rate=100)
        time.sleep(2)
        with service_failure("db", mode="pause", duration=3):
            time.sleep(6)                      # 3 s paused, then 3 s of recovery

        assert_recovers_within(load.session, 5)

Every fault fixture is a context manager built on the same ledger as `chaoslab run`: its revert
runs when the block ends, when the test fails, and on Ctrl-C; after a SIGKILL, `chaoslab recover`.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..runner.session import ChaosSession, DryRun, LoadHandle, TargetLike

COMPONENTS = ("database", "cache", "api", "network", "proxy", "process", "stack", "resources", "kafka", "storage")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaoslab")
    group.addoption("--chaos-dry-run", action="store_true",
                    help="Plan chaos tests without injecting: each fault fixture skips its test with the plan.")
    group.addoption("--chaos-report", metavar="DIR", default=None,
                    help="Keep a chaoslab run directory with reports for each chaos test under DIR.")
    parser.addini("chaos_stack", "Stack file brought up by the chaos_stack fixture.", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a chaos test (injects real faults)")
    for component in COMPONENTS:
        config.addinivalue_line("markers", f"chaos_{component}: a chaos test of the {component}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # chaos_<anything> implies chaos, so `-m chaos` selects them all
    for item in items:
        if any(m.name.startswith("chaos_") for m in item.iter_markers()) and not item.get_closest_marker("chaos"):
            item.add_marker(pytest.mark.chaos)


# -- the session per test -----------------------------------------------------------------

@pytest.fixture
def chaos_session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChaosSession]:
    """The recorded chaos session of this test (faults, load, journal, analysis)."""
    report_dir = request.config.getoption("--chaos-report")
    safe = re.sub(r"[^\w.-]+", "_", request.node.nodeid)[-120:]
    run_dir = Path(report_dir) / safe if report_dir else tmp_path / "chaos-run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    # a test that uses `chaos_stack` (the plugin's, or a conftest's override) resolves its string
    # targets in that stack; otherwise in the ini option's stack file, if any
    if "chaos_stack" in request.fixturenames:
        stack = request.getfixturevalue("chaos_stack").file
    else:
        ini = request.config.getini("chaos_stack")
        stack = str(Path(request.config.rootpath) / ini) if ini else None
    session = ChaosSession(run_dir, request.node.nodeid, stack_file=stack,
                           dry_run=bool(request.config.getoption("--chaos-dry-run")),
                           reports=("md", "html", "junit", "json") if report_dir else ())
    with session:
        yield session


def _fault(session: ChaosSession, name: str, target: TargetLike, duration: float | None,
           **params: Any) -> contextlib.AbstractContextManager[Any]:
    @contextlib.contextmanager
    def cm() -> Iterator[Any]:
        try:
            with session.fault(name, target, duration=duration, **params) as fault:
                yield fault
        except DryRun as plan:
            pytest.skip(f"chaos dry run: {plan}")

    return cm()


@pytest.fixture
def chaos(chaos_session: ChaosSession) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """Any registered fault: ``with chaos("network.loss", {"address": ip}, percent=30): ...``."""

    def make(name: str, target: TargetLike = None, *, duration: float | None = None, **params: Any) -> Any:
        return _fault(chaos_session, name, target, duration, **params)

    return make


def _container(session: ChaosSession, target: TargetLike) -> dict[str, Any] | None:
    """The container target ``target`` means, if it means one: a ``{container:}``/``{compose:}``
    spec, or (with no stack to look in) the name of a running container or of a Compose service
    (``service_failure("kafka")`` as in a docker-compose project: every replica)."""
    from ..targets import TargetSpec
    from ..targets.docker import DOCKER_KINDS

    if isinstance(target, dict) and ("container" in target or "compose" in target):
        return target
    if isinstance(target, TargetSpec):
        return target.model_dump(mode="json", exclude_none=True) if target.kind in DOCKER_KINDS else None
    if isinstance(target, str) and session.stack_file is None:
        from ..platforms import docker

        if docker.get(target) is not None:
            return {"container": target}
        projects = docker.compose_projects_of(target)
        if len(projects) == 1:
            return {"compose": {"project": projects[0], "service": target}, "mode": "all"}
    return None


@pytest.fixture
def service_failure(chaos_session: ChaosSession) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """``service_failure(target, mode="kill"|"terminate"|"pause"|"stop", duration=None)``.

    The failure starts when the block starts and ends with the block, or after ``duration``
    seconds if that comes first (a paused service resumes then; the block can watch it recover).
    ``kill`` and ``terminate`` act once; their ``duration`` only marks the fault window.
    On a container (or a Compose service) the modes are Docker's: pause, stop (started again at
    the end), kill, restart."""

    def make(target: TargetLike, mode: str = "kill", duration: float | None = None, **params: Any) -> Any:
        container = _container(chaos_session, target)
        if container is not None:
            if mode not in ("kill", "pause", "stop", "restart"):
                raise ValueError(f"mode must be kill, pause, stop or restart on a container, not {mode!r}")
            return _fault(chaos_session, f"container.{mode}", container, duration, **params)
        if mode not in ("kill", "terminate", "pause"):
            raise ValueError(f"mode must be kill, terminate or pause, not {mode!r}")
        return _fault(chaos_session, f"process.{mode}", target, duration, **params)

    return make


@pytest.fixture
def network_partition(chaos_session: ChaosSession) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """``network_partition(target, peers=[...], ports=[...], direction="both")`` with nftables
    (inside the container's network namespace for a container)."""

    def make(target: TargetLike, *, duration: float | None = None, **params: Any) -> Any:
        return _fault(chaos_session, "network.partition", _container(chaos_session, target) or target, duration,
                      **params)

    return make


@pytest.fixture
def inject_latency(chaos_session: ChaosSession) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """``inject_latency(link, latency_ms=200, jitter_ms=50, api=...)`` on a fault-proxy link."""

    def make(link: str, latency_ms: float = 100, jitter_ms: float = 0, *, api: str | None = None,
             duration: float | None = None, **params: Any) -> Any:
        target: dict[str, Any] = {"proxy": link}
        if api:
            target["api"] = api
        # the fault's parameters are durations, where a bare number means seconds
        return _fault(chaos_session, "network.latency", target, duration, latency=f"{latency_ms}ms",
                      jitter=f"{jitter_ms}ms", **params)

    return make


@pytest.fixture
def resource_limit(chaos_session: ChaosSession) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """``resource_limit(target, cpu=0.2, memory="64MB")``: CPU quota and/or memory limit together.
    Docker's words work too: ``cpu_quota=50000`` (µs per ``cpu_period``, 100000 by default) and
    ``mem_limit="512m"`` (binary units, as ``docker run -m``)."""

    @contextlib.contextmanager
    def make(target: TargetLike, *, cpu: float | None = None, memory: int | str | None = None,
             cpu_quota: int | None = None, cpu_period: int = 100_000,
             mem_limit: int | str | None = None) -> Iterator[None]:
        if cpu_quota is not None:
            cpu = cpu_quota / cpu_period
        if mem_limit is not None:
            memory = _docker_bytes(mem_limit)
        target = _container(chaos_session, target) or target
        if cpu is None and memory is None:
            raise ValueError("resource_limit needs cpu=, memory= or both")
        with contextlib.ExitStack() as stack:
            if cpu is not None:
                stack.enter_context(_fault(chaos_session, "cpu.throttle", target, None, cores=cpu))
            if memory is not None:
                stack.enter_context(_fault(chaos_session, "memory.limit", target, None, limit=memory))
            yield

    return make


def _docker_bytes(value: int | str) -> int:
    """``512m`` as ``docker run -m`` reads it: binary units."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+)\s*([bkmg]?)b?\s*", value.lower())
    if not m:
        raise ValueError(f"invalid mem_limit {value!r} (Docker's form: 512m, 1g)")
    return int(m.group(1)) * int(1024 ** "bkmg".index(m.group(2) or "b"))


@pytest.fixture
def chaos_load(chaos_session: ChaosSession) -> Callable[..., LoadHandle]:
    """``chaos_load(url=..., method="POST", rate=100, body=..., ack=...)``: open-model load in the
    background for the rest of the test; ``.session`` is what the assertion helpers take."""

    def make(**http: Any) -> LoadHandle:
        handle = chaos_session.load(**http)
        handle.session = chaos_session  # type: ignore[attr-defined]
        return handle

    return make


# -- infrastructure fixtures ----------------------------------------------------------------

@pytest.fixture(scope="session")
def chaos_stack(pytestconfig: pytest.Config) -> Iterator[Any]:
    """The stack of the `chaos_stack` ini option, up for the whole session (down at the end)."""
    path = pytestconfig.getini("chaos_stack")
    if not path:
        pytest.skip("no stack: set `chaos_stack = path/to/stack.yaml` in the pytest ini file")
    from ..stack import Stack

    stack = Stack.load(Path(pytestconfig.rootpath) / path)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def chaos_proxy() -> Iterator[str]:
    """A fault proxy (Toxiproxy-compatible API) for the session; yields its API URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "chaoslab.proxy", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"the fault proxy did not start: {err}") from None
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
