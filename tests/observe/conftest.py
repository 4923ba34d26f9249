"""Real processes for the observability tests: a Prometheus server with a generated config and
temporary storage, prometheus-client apps, a CPU-hot service, a TCP pair, a memory hog.
Everything a test starts is killed at teardown, whatever happened."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import PY, free_port, wait_for_port

from chaoslab import probes
from chaoslab.experiment.model import ProbeSpec
from chaoslab.probes import ProbeContext, Sample

APPS = Path(__file__).resolve().parent / "apps"
PROMETHEUS = shutil.which("prometheus")


class Procs:
    """Child processes of one test, each in its own session, killed as a group at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def app(self, name: str, *args: str, **kw: Any) -> subprocess.Popen[Any]:
        return self.start([PY, str(APPS / name), *args], **kw)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=10)


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    try:
        yield p
    finally:
        p.close()


class Prometheus:
    def __init__(self, procs: Procs, workdir: Path) -> None:
        self.procs = procs
        self.workdir = workdir
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, targets: list[str]) -> Prometheus:
        if PROMETHEUS is None:
            pytest.skip("prometheus is not installed (Debian package prometheus; scripts/setup.sh)")
        self.port = free_port()
        config = self.workdir / "prometheus.yml"
        items = ", ".join(f"'{t}'" for t in targets)
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: chaoslab-test\n    static_configs:\n      - targets: [{items}]\n"
        )
        self.procs.start(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stderr=open(self.workdir / "prometheus.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        wait_for_port(self.port, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("prometheus never became ready")

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
        """The first non-empty result of ``promql`` (scrapes happen every second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.5)
        raise AssertionError(f"{promql!r} stayed empty for {timeout}s; log: {self.log()}")

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-2000:]


@pytest.fixture
def prometheus(procs: Procs, tmp_path: Path) -> Prometheus:
    d = tmp_path / "prometheus"
    d.mkdir()
    return Prometheus(procs, d)


def metrics_app(procs: Procs, rate: float = 20.0) -> int:
    port = free_port()
    procs.app("metrics_app.py", str(port), str(rate))
    wait_for_port(port)
    return port


def sample(spec: dict[str, Any], samples: int = 1) -> list[Sample]:
    """``samples`` samples of a probe built from ``spec``, taken one after the other."""
    probe = probes.build("p", ProbeSpec.model_validate(spec), ProbeContext({}))

    async def go() -> list[Sample]:
        await probe.start()
        try:
            return [await probe.sample() for _ in range(samples)]
        finally:
            await probe.close()

    return asyncio.run(go())
