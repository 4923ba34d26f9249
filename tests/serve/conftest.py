"""A real ``chaoslab serve`` on a free port, and a real browser (Debian's chromium) driving it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT, chaoslab_argv, child_env, free_port, wait_for_port

SHOTS = os.environ.get("CHAOSLAB_SCREENSHOTS")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    host: str = "127.0.0.1"
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def read_line(self, starting: str, timeout: float = 30) -> str:
        """The first line of the console's output that starts with ``starting``."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith(starting):
                return line
        raise AssertionError(f"no line {starting!r} in the console's output: {self.output}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        out, _ = self.proc.communicate(timeout=20)
        return out


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts ``chaoslab serve`` with the given arguments (its own state directory)."""
    started: list[Server] = []

    def start(*args: str, host: str = "127.0.0.1", netns: list[str] | None = None,
              env: dict[str, str] | None = None) -> Server:
        """``netns``: a command prefix that runs the console in a network namespace (then the
        caller waits for it from inside that namespace); ``env``: variables set beside the usual."""
        port = free_port()
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        argv = chaoslab_argv("serve", "--host", host, "--port", str(port), *args)
        proc = subprocess.Popen([*(netns or []), *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**child_env(state), "PYTHONUNBUFFERED": "1", **(env or {})}, cwd=ROOT)
        server = Server(proc, port, host)
        started.append(server)
        if netns:
            return server
        try:
            wait_for_port(port, timeout=30, host=host)
        except TimeoutError:
            proc.kill()
            raise AssertionError(f"chaoslab serve did not start: {proc.communicate()[0]}") from None
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless chromium through chromedriver (selenium); skips where Debian's packages are not."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/setup.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chaoslab-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,1000", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, name: str) -> None:
    """With CHAOSLAB_SCREENSHOTS=docs/img, the page as the browser drew it, for docs/console.md."""
    if SHOTS:
        out = Path(SHOTS) if Path(SHOTS).is_absolute() else ROOT / SHOTS
        out.mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return Math.min(document.body.scrollHeight, 1600)")
        driver.set_window_size(1280, max(600, int(height) + 40))
        driver.save_screenshot(str(out / f"console-{name}.png"))
        driver.set_window_size(1280, 1000)
