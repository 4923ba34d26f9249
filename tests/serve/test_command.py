"""``chaoslab serve``'s own mistakes: one line, exit 2 for bad input, exit 4 when it cannot serve."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.conftest import chaoslab_argv, child_env


def serve_fails(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(chaoslab_argv("serve", "--runs-dir", str(tmp_path / "runs"), *args), capture_output=True,
                          text=True, timeout=60, env=child_env(tmp_path), check=False)


def test_bad_options_and_a_taken_port_are_one_line(tmp_path: Path) -> None:
    r = serve_fails(tmp_path, "--experiments", str(tmp_path / "nope"))
    assert r.returncode == 2 and r.stderr.strip() == f"chaoslab: --experiments {tmp_path / 'nope'}: not a directory"
    r = serve_fails(tmp_path, "--token", "short")
    assert r.returncode == 2 and "at least 16 characters" in r.stderr and "Traceback" not in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = serve_fails(tmp_path, "--port", str(port))
    assert r.returncode == 4, r.stderr
    assert r.stderr.strip() == f"chaoslab: cannot serve on 127.0.0.1:{port}: Address already in use"
