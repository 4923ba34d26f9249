"""``chaoslab doctor`` on a machine where Docker answers: version, storage and cgroup driver as
Docker itself reports them, and the faults that can run on containers; bad container input is
one line with file, line and field."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .conftest import chaoslab, docker


def test_doctor_reports_docker_as_docker_info_does() -> None:
    out = subprocess.run(chaoslab("doctor", "--json"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    cap = next(c for c in data["capabilities"] if c["name"] == "docker")
    version, driver, cgroup_driver = docker(
        "info", "--format", "{{.ServerVersion}} {{.Driver}} {{.CgroupDriver}}"
    ).split()
    assert cap["ok"] and version in cap["detail"] and f"storage {driver}" in cap["detail"]
    assert f"{cgroup_driver} cgroup driver" in cap["detail"]
    assert {
        "container.kill",
        "container.pause",
        "memory.limit",
        "network.partition",
        "disk.fill",
    } <= set(data["container_faults"])
    assert "network.latency" not in data["container_faults"]  # a proxy fault: no container target


def test_container_input_errors_are_one_line_each(tmp_path: Path) -> None:
    exp = tmp_path / "bad.yaml"
    exp.write_text(
        "title: bad\n"
        "targets:\n"
        "  p: {pid: 4242}\n"
        "  c: {container: web, processes: some}\n"
        "  s: {compose: {project: shop, servce: api}}\n"
        "  q: {process: 'x', processes: all}\n"
    )
    steps = tmp_path / "steps.yaml"
    steps.write_text(
        "title: bad steps\n"
        "targets:\n"
        "  p: {pid: 4242}\n"
        "  c: {container: web}\n"
        "method:\n"
        "  - {fault: container.pause, target: p, at: 1s, duration: 1s}\n"
        "  - {fault: container.remove, target: c, at: 1s}\n"
    )
    lines = []
    for f in (exp, steps):
        out = subprocess.run(
            chaoslab("validate", str(f)),
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")},
        )
        assert out.returncode == 2
        assert "Traceback" not in out.stdout + out.stderr
        lines += (out.stdout + out.stderr).strip().splitlines()
    assert any(line.startswith(f"{exp}:4:") and "processes" in line for line in lines), lines
    assert any(line.startswith(f"{exp}:5:") and "servce" in line for line in lines), lines
    assert any(
        line.startswith(f"{exp}:6:") and "processes: all is for container" in line for line in lines
    ), lines
    assert any(
        line.startswith(f"{steps}:6:") and "cannot act on a pid target" in line for line in lines
    ), lines
    assert any(line.startswith(f"{steps}:7:") and "allow_remove: true" in line for line in lines), (
        lines
    )
