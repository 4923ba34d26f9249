"""The TCP probe against a real Redis: a connect alone is completed by the kernel while the server
is frozen (SIGSTOP, as a paused container), so only ``send``/``reply`` sees the freeze. Also a
wrong answer, a close without one, and bad specs as one clear line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from tests.conftest import free_ports

from chaoslab import probes
from chaoslab.experiment.model import ProbeSpec
from chaoslab.probes import ProbeContext, Sample


def sample(spec: dict[str, Any]) -> Sample:
    probe = probes.build("p", ProbeSpec.model_validate({**spec, "timeout": "1s"}), ProbeContext({}))

    async def go() -> Sample:
        await probe.start()
        try:
            return await probe.sample()
        finally:
            await probe.close()

    return asyncio.run(go())


@pytest.fixture
def redis() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    (port,) = free_ports(1)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sample({"tcp": {"port": port}}).ok:
                break
        yield port, proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def test_only_a_request_sees_a_frozen_redis(redis: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, proc = redis
    ping = {"tcp": {"port": port, "send": "PING\r\n", "reply": r"\+PONG"}}
    assert sample(ping).ok
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert sample({"tcp": {"port": port}}).ok  # the kernel completes the handshake
        frozen = sample(ping)
        assert not frozen.ok and frozen.error == "an answer timeout after 1s", frozen
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert sample(ping).ok


def test_a_wrong_answer_and_no_answer_fail() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]

        def serve() -> None:
            for answer in (b"-ERR nope\r\n", b"", b"SSH-2.0-test\r\n"):
                conn, _ = srv.accept()
                with conn:
                    if answer.startswith(b"SSH"):
                        conn.sendall(answer)  # a server that speaks first
                        continue
                    conn.recv(64)
                    if answer:
                        conn.sendall(answer)

        t = threading.Thread(target=serve)
        t.start()
        wrong = sample({"tcp": {"port": port, "send": "PING\r\n", "reply": r"\+PONG"}})
        closed = sample({"tcp": {"port": port, "send": "PING\r\n"}})
        greeting = sample({"tcp": {"port": port, "reply": "SSH-2\\.0-"}})
        t.join(10)
    assert not wrong.ok and wrong.error == "answer '-ERR nope\\r\\n' does not match '\\\\+PONG'", wrong
    assert not closed.ok and closed.error == "closed without an answer", closed
    assert greeting.ok, greeting


@pytest.mark.parametrize(("tcp", "message"), [
    ({"port": 1, "reply": "(", "send": "x"}, "invalid regular expression"),
    ({"port": 1, "send": "\u20ac"}, "beyond one byte"),
])
def test_bad_specs_are_refused(tcp: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProbeSpec.model_validate({"tcp": tcp})
