"""Where the demo's exchange runs: the one switch between local processes and Compose.

A platform brings the exchange up (unless it already was), says which variables the catalog's
experiments need to reach it, finds the trading API's process for the baseline profile, and
takes down only what it started.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

import click

from ..errors import ChaoslabError

EXCHANGE = Path(__file__).resolve().parents[3] / "examples" / "exchange"
STACK_FILE = EXCHANGE / "stack.yaml"
COMPOSE_FILE = EXCHANGE / "compose.yaml"
COMPOSE_TARGETS = EXCHANGE / "compose-targets.yaml"


class Platform(Protocol):
    name: str
    was_up: bool

    def up(self) -> None: ...

    def down(self) -> None: ...

    def api_pid(self) -> int: ...

    def overlay(self, variables: dict[str, str]) -> Any:
        """The targets overlay that points the catalog's experiments at this platform (or None)."""
        ...

    def describe(self) -> str: ...


class LocalPlatform:
    """The exchange as supervised local processes (examples/exchange/stack.yaml)."""

    name = "local processes"

    def __init__(self, runs_dir: Path) -> None:
        from ..stack import Stack

        if not STACK_FILE.exists():
            raise click.ClickException(f"the exchange example is not here ({STACK_FILE}); run the demo from a "
                                       "source checkout")
        # The stack's chaos exporter serves the demo's own runs to Prometheus.
        os.environ["EXCHANGE_RUNS_DIR"] = str(runs_dir.resolve())
        self.stack = Stack.load(STACK_FILE)
        self.was_up = self.stack.is_up()

    def up(self) -> None:
        try:
            self.stack.up()
        except ChaoslabError as exc:
            raise click.ClickException(str(exc)) from None

    def down(self) -> None:
        self.stack.down()

    def api_pid(self) -> int:
        pid = self.stack.resolve("trading-api").get("pid")
        if not pid:
            raise click.ClickException("the trading API has no running process")
        return int(pid)

    def overlay(self, variables: dict[str, str]) -> Any:
        return None

    def describe(self) -> str:
        return f"chaoslab stack down {STACK_FILE}"


SERVICES = ("postgres", "redis", "toxi", "trading-api", "nginx", "market-simulator", "order-flow", "prometheus")


class ComposePlatform:
    """The exchange as a Docker Compose project (examples/exchange/compose.yaml), reached through
    the catalog's targets overlay (compose-targets.yaml): the same experiment files."""

    name = "Docker Compose"

    def __init__(self, runs_dir: Path) -> None:
        import shutil
        import sysconfig

        missing = [f for f in (COMPOSE_FILE, COMPOSE_TARGETS) if not f.exists()]
        if missing:
            raise click.ClickException(f"--compose needs {' and '.join(map(str, missing))}, which this checkout lacks")
        if shutil.which("docker-compose") is None or shutil.which("docker") is None:
            raise click.ClickException("--compose needs docker and docker-compose (scripts/docker.sh installs them)")
        self.project = os.environ.get("EXCHANGE_PROJECT", "exchange")
        self.env = {**os.environ, "EXCHANGE_PROJECT": self.project}
        # The containers run the venv's packages with Debian's python3: this interpreter's.
        self.env.setdefault("EXCHANGE_SITE_PACKAGES", sysconfig.get_paths()["purelib"])
        if self._docker("info", check=False).returncode != 0:
            raise click.ClickException("--compose: dockerd is not running (scripts/docker.sh starts it)")
        absent = [img for img in ("chaoslab/host:1", "chaoslab/exchange-postgres:1")
                  if self._docker("image", "inspect", img, check=False).returncode != 0]
        if absent:
            raise click.ClickException(f"--compose: the image(s) {', '.join(absent)} are not built "
                                       "(bash scripts/images.sh builds them offline)")
        self.was_up = all(s == "healthy" for s in self.health().values())

    def _docker(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and proc.returncode != 0:
            raise click.ClickException(f"docker {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
        return proc

    def _compose(self, *args: str, timeout: float = 300) -> None:
        proc = subprocess.run(["docker-compose", "-p", self.project, "-f", str(COMPOSE_FILE), *args],
                              capture_output=True, text=True, timeout=timeout, env=self.env)
        if proc.returncode != 0:
            raise click.ClickException(f"docker-compose {' '.join(args)}: {proc.stderr.strip()[-1000:]}")

    def _container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def health(self) -> dict[str, str]:
        out = {}
        for service in SERVICES:
            proc = self._docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}"
                                "{{.State.Status}}{{end}}", self._container(service), check=False)
            out[service] = proc.stdout.strip() if proc.returncode == 0 else "absent"
        return out

    def up(self, timeout: float = 300) -> None:
        self._compose("up", "-d")
        deadline = time.monotonic() + timeout
        while True:
            health = self.health()
            if all(v == "healthy" for v in health.values()):
                return
            if time.monotonic() > deadline:
                waiting = ", ".join(f"{k} ({v})" for k, v in health.items() if v != "healthy")
                raise click.ClickException(f"the Compose exchange is not healthy after {timeout:.0f} s: {waiting}")
            time.sleep(1)

    def down(self) -> None:
        self._compose("down", "-v", "-t", "15")

    def api_pid(self) -> int:
        pid = self._docker("inspect", "-f", "{{.State.Pid}}", self._container("trading-api")).stdout.strip()
        if not pid.isdigit() or pid == "0":
            raise click.ClickException("the trading API's container has no running process")
        return int(pid)

    def overlay(self, variables: dict[str, str]) -> Any:
        from ..experiment.overlay import load_overlay

        return load_overlay(COMPOSE_TARGETS, {**variables, "EXCHANGE_PROJECT": self.project})

    def describe(self) -> str:
        return f"docker-compose -p {self.project} -f {COMPOSE_FILE} down -v"
