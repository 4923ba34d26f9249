"""CPU flamegraphs with py-spy: one recording per phase of a run, or a one-off for a duration.

py-spy samples the target from outside (``--nonblocking``: the target is never paused, so the
profile does not change what the experiment measures) and writes an SVG when it gets SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CapabilityError
from ..records import Record
from ..system import capabilities
from .flamegraph import grown, hot_functions
from .spec import ProfileSpec


def py_spy() -> str:
    """Path of py-spy, or ``CapabilityError`` with the doctor's reason."""
    capabilities.require("py-spy")
    return capabilities.check("py-spy").detail


@dataclass
class Recording:
    """One py-spy process writing ``output`` until it is stopped (or its duration ends)."""

    pid: int
    output: Path
    proc: subprocess.Popen[bytes]
    label: str

    @classmethod
    def start(cls, pid: int, output: Path, *, rate: int = 100, duration: float | None = None,
              subprocesses: bool = False, gil: bool = False, label: str = "") -> Recording:
        argv = [py_spy(), "record", "--pid", str(pid), "--output", str(output), "--format", "flamegraph",
                "--rate", str(rate), "--nonblocking"]
        if subprocesses:
            argv.append("--subprocesses")
        if gil:
            argv.append("--gil")
        if duration is not None:
            argv += ["--duration", str(max(1, round(duration)))]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        return cls(pid, output, proc, label)

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float = 30.0) -> str | None:
        """Wait for the SVG; the reason when there is none."""
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            return "py-spy did not finish writing in time"
        if self.output.exists() and self.output.stat().st_size > 0:
            return None
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else f"py-spy exited with {self.proc.returncode} and wrote nothing"


def summary(path: Path, top: int = 3) -> dict[str, Any]:
    total, hot = hot_functions(path, top)
    return {"samples": total, "hot": [{"function": h.function, "share": round(h.share, 4)} for h in hot]}


class PhaseProfiler:
    """An ``Observer``: py-spy records ``spec.target`` during each of ``spec.phases`` into
    ``flamegraph-<phase>.svg`` in the run directory, announced by ``event``/``profile`` records."""

    def __init__(self, spec: ProfileSpec) -> None:
        self.spec = spec
        self._ctx: Any = None
        self._pid: int | None = None
        self._current: Recording | None = None
        self._done: list[Recording] = []

    async def start(self, ctx: Any) -> None:
        await asyncio.to_thread(py_spy)
        target = ctx.targets.get(self.spec.target)
        if target is None:
            known = ", ".join(ctx.targets) or "none"
            raise ValueError(f"profile target {self.spec.target!r} is not a target of the experiment (targets: {known})")
        pids = [p.pid for p in target.processes if p.alive()]
        if not pids:
            raise CapabilityError(f"profile target {self.spec.target!r} has no live process to profile")
        self._pid = min(pids)  # the parent of a service's processes; --subprocesses adds the rest
        self._ctx = ctx

    def on_record(self, record: Record) -> None:
        if record["type"] != "phase" or self._ctx is None:
            return
        self._stop_current()
        phase = record["name"]
        if phase in self.spec.phases and self._pid is not None:
            out = Path(self._ctx.run_dir) / f"flamegraph-{phase}.svg"
            try:
                rec = Recording.start(self._pid, out, rate=self.spec.rate, subprocesses=self.spec.subprocesses,
                                      gil=self.spec.gil, label=str(phase))
            except (OSError, CapabilityError) as exc:
                self._ctx.emit("event", source="profile", kind="error", phase=phase, error=str(exc))
                return
            self._current = rec
            self._ctx.emit("event", source="profile", kind="started", phase=phase, pid=self._pid)

    def _stop_current(self) -> None:
        if self._current is not None:
            self._current.interrupt()
            self._done.append(self._current)
            self._current = None

    async def stop(self) -> None:
        self._stop_current()
        baseline: Path | None = None
        for rec in self._done:
            error = await asyncio.to_thread(rec.wait)
            if error is not None:
                self._ctx.emit("event", source="profile", kind="error", phase=rec.label, error=error)
                continue
            info = await asyncio.to_thread(summary, rec.output)
            if rec.label == "baseline":
                baseline = rec.output
            elif baseline is not None:
                # Which function the fault made hotter, against the baseline's profile.
                growth = await asyncio.to_thread(grown, baseline, rec.output)
                if growth is not None:
                    info["grew"] = {"function": growth[0], "baseline_share": round(growth[1], 4),
                                    "share": round(growth[2], 4)}
            self._ctx.emit("event", source="profile", kind="flamegraph", phase=rec.label,
                           path=rec.output.name, pid=rec.pid, **info)
        self._done = []
        self._ctx = None  # later phase records (verify, end) must not start a recording
