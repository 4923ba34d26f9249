"""`chaoslab --help` says what chaoslab reaches: local processes, Docker/Compose, Kubernetes."""

from __future__ import annotations

import subprocess
import sys


def test_help_names_the_three_platforms() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chaoslab", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "one machine" not in text
    for platform in ("local processes", "Docker", "Compose", "Kubernetes"):
        assert platform in text, text
