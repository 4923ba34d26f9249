"""The container example end to end: the basic service in chaoslab/host:1 (the host's /usr
bind-mounted, no image pulled) under Compose, paused and crashed under load by
examples/containers/pause-under-load.yaml; Docker's restart policy brings it back, and the report
says so from Docker's own events."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

from .conftest import ROOT, Lab, chaoslab, journal, only_run_dir, wait_healthy, wait_http


def test_compose_example_pause_and_crash_under_load(lab: Lab, tmp_path: Path) -> None:
    subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}"
    env = {
        **os.environ,
        "SUBNET": f"{subnet}.0/24",
        "API_IP": f"{subnet}.10",
        "PROJECT": lab.prefix,
        "CHAOSLAB_STATE_DIR": str(tmp_path / "state"),
    }
    compose = [
        "docker-compose",
        "-p",
        lab.prefix,
        "-f",
        str(ROOT / "examples/containers/docker-compose.yml"),
    ]
    up = subprocess.run(
        [*compose, "up", "-d"], capture_output=True, text=True, env=env, timeout=180
    )
    assert up.returncode == 0, up.stderr
    try:
        wait_http(f"http://{subnet}.10:8081/health", timeout=30)
        wait_healthy(f"{lab.prefix}_api_1")  # the run's baseline must see the service warm
        proc = subprocess.run(
            chaoslab(
                "run",
                "--runs-dir",
                str(tmp_path / "runs"),
                str(ROOT / "examples/containers/pause-under-load.yaml"),
            ),
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run_dir = only_run_dir(tmp_path / "runs")
        records = journal(run_dir)
        name = f"{lab.prefix}_api_1"
        kinds = [
            r["kind"] for r in records if r.get("source") == "docker" and r.get("container") == name
        ]
        assert {"pause", "unpause", "die", "start"} <= set(kinds)
        report = (run_dir / "report.md").read_text()
        assert (
            f"{name} was killed by SIGKILL at" in report
            and "restarted by Docker's always policy" in report
        )
    finally:
        subprocess.run([*compose, "down", "-t", "0"], capture_output=True, env=env, timeout=180)
