"""User mistakes give one clear line: invalid stack files (exit 2, file:line:col), a port in use,
a missing binary, an unknown service, a stack that is not up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from stack_helpers import StackFactory, free_port

from chaoslab.errors import InputError, TargetError
from chaoslab.stack import Stack, events_between, resolve_service
from chaoslab.stack.errors import StackError


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaoslab.stack", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_unknown_key_is_a_line_accurate_error_with_a_suggestion(stacks: StackFactory) -> None:
    path = stacks.write("""name: typo
services:
  db:
    postgres: {port: 5999}
    restart: {policy: always, bakoff: 1s}
""")
    with pytest.raises(InputError) as err:
        Stack.load(path)
    assert str(err.value) == (
        f"{path}:5:31: services.db.restart.bakoff: unknown field 'bakoff' (did you mean 'backoff'?)"
    )
    proc = _cli("up", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {err.value}"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  a:\n    command: sleep 1\n    depends_on: [b]\n",
            ":5:18: services.a.depends_on[0]: unknown service 'b'",
        ),
        (
            "  a:\n    command: sleep 1\n    depends_on: [b]\n  b:\n    command: sleep 1\n    depends_on: {a: started}\n",
            "dependency cycle: a -> b -> a",
        ),
        (
            "  a:\n    command: sleep 1\n    redis: {port: 7000}\n",
            "exactly one of command, postgres, redis",
        ),
        ("  a:\n    command: sleep 1\n    restart: sometimes\n", "services.a.restart"),
        (
            "  a:\n    command: sleep 1\n    depends_on: {b: healthy}\n  b:\n    command: sleep 1\n",
            "condition 'healthy' needs a healthcheck on service 'b'",
        ),
        (
            "  a:\n    command: sleep 1\n    liveness: {failing_for: 5s}\n",
            ":5:5: services.a.liveness: liveness needs a healthcheck on the service",
        ),
        (
            "  a:\n    command: sleep 1\n    healthcheck: {tcp: 1}\n    liveness: {failing_for: 0s}\n",
            "services.a.liveness.failing_for",
        ),
    ],
)
def test_invalid_stack_files(stacks: StackFactory, body: str, expected: str) -> None:
    path = stacks.write("name: bad\nservices:\n" + body)
    with pytest.raises(InputError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        Stack.load(path).up(timeout=10)


def test_port_in_use_is_one_clear_error_and_starts_nothing(stacks: StackFactory) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = stacks.write(f"""name: busy
services:
  cache:
    redis: {{port: {port}}}
""")
        stack = stacks.track(path)
        with pytest.raises(StackError) as err:
            stack.up(timeout=10)
        assert str(err.value).startswith(f"service 'cache': port {port} is already in use (by pid ")
        assert "choose another port" in str(err.value)
        assert not stack.dir.supervisor_alive() and stack.dir.read_state() is None
        proc = _cli("up", str(path))
        assert proc.returncode == 4
        assert (
            len(proc.stderr.strip().splitlines()) == 1
            and f"port {port} is already in use" in proc.stderr
        )


def test_missing_binary_names_the_debian_package(stacks: StackFactory, tmp_path: Path) -> None:
    path = stacks.write(f"""name: nobin
services:
  cache:
    redis: {{port: {free_port()}}}
""")
    proc = _cli("up", str(path), env={"PATH": str(tmp_path)})
    assert proc.returncode == 4
    assert proc.stderr.strip() == (
        "error: service 'cache': redis-server not found (install the Debian package redis-server)"
    )
    path = stacks.write(f"""name: nopg
services:
  db:
    postgres: {{port: {free_port()}, bin_dir: /nonexistent/bin}}
""")
    with pytest.raises(StackError, match=r"install the Debian package postgresql-15\)$"):
        stacks.track(path).up(timeout=10)
    path = stacks.write(
        "name: nocmd\nservices:\n  a:\n    command: chaoslab-no-such-program --flag\n"
    )
    with pytest.raises(StackError, match="command 'chaoslab-no-such-program' not found on PATH"):
        stacks.track(path).up(timeout=10)


def test_resolving_without_a_running_stack(stacks: StackFactory) -> None:
    path = stacks.write("name: idle\nservices:\n  a:\n    command: sleep 300\n")
    with pytest.raises(
        TargetError, match=r"^stack idle is not up \(run `chaoslab stack up .*stack.yaml`\)$"
    ):
        resolve_service(str(path), "a")
    with pytest.raises(TargetError, match="no stack is up"):
        resolve_service(None, "a")
    assert events_between(None, 0, 1e12) == []


def test_two_running_stacks_make_none_ambiguous(stacks: StackFactory) -> None:
    one = stacks.load("name: one\nservices:\n  a:\n    command: sleep 300\n")
    two = stacks.load("name: two\nservices:\n  a:\n    command: sleep 300\n")
    one.up(timeout=30)
    assert resolve_service(None, "a")["pid"] == one.resolve("a")["pid"]
    two.up(timeout=30)
    with pytest.raises(TargetError, match="2 stacks are up"):
        resolve_service(None, "a")
    assert resolve_service(two.file, "a")["stack"] == "two"


def test_postgres_data_dir_the_postgres_user_cannot_reach(stacks: StackFactory) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs postgres as another user")
    path = stacks.write(
        f"name: hidden\nstate_dir: private/state\nservices:\n  db:\n    postgres: {{port: {free_port()}}}\n"
    )
    (path.parent / "private").mkdir(mode=0o700)
    with pytest.raises(
        StackError, match=r"user 'postgres' cannot reach .* because .*/private is mode 700"
    ):
        stacks.track(path).up(timeout=10)
