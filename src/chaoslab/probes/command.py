"""Command probe: run an argv (never through a shell); judge exit code and output."""

from __future__ import annotations

import asyncio
import os
import signal

from pydantic import Field

from . import register
from .base import Probe, ProbeModel, Sample, Stopwatch


class CommandProbeSpec(ProbeModel):
    argv: list[str] = Field(..., min_length=1, description="Program and arguments; never run through a shell.")
    env: dict[str, str] = Field(default_factory=dict)


class CommandExpect(ProbeModel):
    exit_code: int | None = 0
    stdout_contains: str | None = None


@register
class CommandProbe(Probe[CommandProbeSpec, CommandExpect]):
    kind = "command"

    async def sample(self) -> Sample:
        watch = Stopwatch()
        env = {**os.environ, **self.spec.env}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return Sample(False, None, watch.elapsed(), f"cannot run {self.spec.argv[0]}: {exc.strerror or exc}")
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
            return Sample(False, None, watch.elapsed(), f"timeout after {self.timeout:g}s")
        latency = watch.elapsed()
        stdout = out.decode(errors="replace")
        code = proc.returncode
        if self.expect.exit_code is not None and code != self.expect.exit_code:
            tail = (err.decode(errors="replace").strip().splitlines() or [""])[-1][:200]
            return Sample(False, code, latency, f"exit code {code}" + (f": {tail}" if tail else ""))
        if self.expect.stdout_contains is not None and self.expect.stdout_contains not in stdout:
            return Sample(False, code, latency, f"output lacks {self.expect.stdout_contains!r}")
        return Sample(True, code, latency)
