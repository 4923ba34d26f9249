"""The eBPF observer: bpftrace on tracepoints for the whole run, per-second counts into the journal.

Journal records (type ``event``, ``source: ebpf``), one per second and key with a non-zero count,
``t`` = the start of that 1 s window on the run clock:

  kind: retransmits  {port, count}              TCP segments retransmitted on a connection of ``port``
                                                (its service side; see ``bpf.py``)
  kind: tcp_state    {state, port, count}       TCP sockets entering ``state`` (SYN_SENT, CLOSE, ...)
                                                on a connection of ``port`` (its service side)
  kind: resets       {direction, port, count}   RSTs sent by local ``port`` / received from ``port``
  kind: oom_kills    {pid, comm, count}         processes chosen by the OOM killer
  kind: sched_wait   {count, avg_us, max_us}    run-queue wait of every task switched in
  kind: sched_wait_target {count, avg_us, max_us}  the same for the targets' processes only
  kind: tracer       {action: started|stopped, tracers, ports?, pids?, totals?}  (the targets')
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import CapabilityError
from . import bpf
from .capability import missing_tracepoints, require_ebpf

READY = "chaoslab-ebpf-ready"
START_TIMEOUT = 60.0  # bpftrace compiles with LLVM first: seconds on a busy 2-core machine
Key = tuple[int, str, tuple[str, ...]]


class Tally:
    """Per-second map values from bpftrace prints, summed again across prints."""

    def __init__(self) -> None:
        self.values: dict[Key, float] = defaultdict(float)

    def add(self, name: str, data: Any) -> None:
        if name not in bpf.MAPS or not isinstance(data, dict):
            return
        for raw_key, value in data.items():
            parts = str(raw_key).split(",")
            try:
                second = int(parts[0])
            except ValueError:
                continue
            key: Key = (second, name, tuple(parts[1:]))
            if name in ("sched_wait_max", "sched_target_max"):
                self.values[key] = max(self.values[key], float(value))
            else:
                self.values[key] += float(value)

    def take(self, upto: float | None = None) -> dict[Key, float]:
        """Remove and return the entries of seconds before ``upto`` (all when None)."""
        done = {k: v for k, v in self.values.items() if upto is None or k[0] < upto}
        for k in done:
            del self.values[k]
        return done


def records(entries: dict[Key, float]) -> list[dict[str, Any]]:
    """Journal fields (with ``t``) for completed seconds, in time order."""
    out: list[dict[str, Any]] = []
    sched: dict[int, dict[str, float]] = defaultdict(dict)
    target: dict[int, dict[str, float]] = defaultdict(dict)
    for (second, name, key), value in sorted(entries.items()):
        if value <= 0:
            continue
        base: dict[str, Any] = {"t": float(second), "source": "ebpf", "window": 1.0}
        if name == "retransmits":
            out.append({**base, "kind": "retransmits", "port": int(key[0]), "count": int(value)})
        elif name == "tcp_state":
            state = bpf.TCP_STATES.get(int(key[0]), key[0])
            port = {"port": int(key[1])} if len(key) > 1 else {}
            out.append({**base, "kind": "tcp_state", "state": state, **port, "count": int(value)})
        elif name in ("rst_sent", "rst_received"):
            out.append({**base, "kind": "resets", "direction": name[4:], "port": int(key[0]),
                        "count": int(value)})
        elif name == "oom_kills":
            out.append({**base, "kind": "oom_kills", "pid": int(key[0]), "comm": ",".join(key[1:]),
                        "count": int(value)})
        elif name.startswith("sched_target_"):
            target[second][name.removeprefix("sched_target_")] = value
        else:
            sched[second][name.removeprefix("sched_wait_")] = value
    for kind, per_second in (("sched_wait", sched), ("sched_wait_target", target)):
        for second, v in sorted(per_second.items()):
            n = v.get("n", 0.0)
            if n:
                out.append({"t": float(second), "source": "ebpf", "window": 1.0, "kind": kind,
                            "count": int(n), "avg_us": round(v.get("sum", 0.0) / n, 1),
                            "max_us": int(v.get("max", 0.0))})
    out.sort(key=lambda r: r["t"])
    return out


class EbpfTracer:
    """An ``Observer``: started before the baseline, stopped after the reverts."""

    def __init__(self, tracers: list[str]) -> None:
        unknown = [t for t in tracers if t not in bpf.TRACEPOINTS]
        if unknown:
            raise ValueError(f"unknown eBPF tracer(s) {', '.join(unknown)} (known: {', '.join(bpf.TRACEPOINTS)})")
        self.tracers = list(dict.fromkeys(tracers))
        self.tally = Tally()
        self.totals: dict[str, int] = defaultdict(int)
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ctx: Any = None
        self._stderr: list[str] = []

    async def start(self, ctx: Any) -> None:
        self._ctx = ctx
        bpftrace = await asyncio.to_thread(require_ebpf)
        needed = [tp for t in self.tracers for tp in bpf.TRACEPOINTS[t]]
        missing = await asyncio.to_thread(missing_tracepoints, bpftrace, needed)
        if missing:
            raise CapabilityError(f"the kernel lacks the tracepoint(s) {', '.join(missing)}")
        script = Path(ctx.run_dir) / "ebpf.bt"
        script.write_text(bpf.program(self.tracers, int(ctx.clock.t0 * 1e9), pids=target_pids(ctx.targets)))
        env = {**os.environ, "BPFTRACE_MAP_KEYS_MAX": "65536"}
        self._proc = await asyncio.create_subprocess_exec(
            bpftrace, "-f", "json", str(script), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True, limit=1 << 24,
        )
        try:
            await asyncio.wait_for(self._until_ready(), START_TIMEOUT)
        except BaseException:
            await self._kill()
            raise
        self._reader = asyncio.create_task(self._read(), name="ebpf-reader")
        ctx.emit("event", source="ebpf", kind="tracer", action="started", tracers=self.tracers,
                 script=script.name, ports=target_ports(ctx.targets), pids=target_pids(ctx.targets))

    async def _until_ready(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                err = await self._stderr_text()
                raise CapabilityError(f"bpftrace failed to start: {err or 'exit ' + str(await self._proc.wait())}")
            msg = _parse(line)
            if msg.get("type") == "printf" and READY in str(msg.get("data")):
                return

    async def _stderr_text(self) -> str:
        assert self._proc is not None and self._proc.stderr is not None
        with contextlib.suppress(TimeoutError):
            data = await asyncio.wait_for(self._proc.stderr.read(), 5)
            lines = [ln for ln in data.decode(errors="replace").splitlines()
                     if ln.strip() and "RLIMIT_MEMLOCK" not in ln]
            return lines[-1].strip() if lines else ""
        return ""

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                return
            msg = _parse(line)
            if msg.get("type") != "map":
                continue
            for name, data in (msg.get("data") or {}).items():
                self.tally.add(str(name).lstrip("@"), data)
            # Seconds at least 3 s old are complete: the 1 s timer has printed them since.
            self._emit(self.tally.take(upto=self._ctx.clock.now() - 3))

    def _emit(self, entries: dict[Key, float]) -> None:
        for rec in records(entries):
            t = rec.pop("t")
            self.totals[rec["kind"]] += rec["count"] if not rec["kind"].startswith("sched_wait") else 0
            self._ctx.emit("event", t=t, **rec)

    async def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGINT)  # END prints what the last second counted
        try:
            await asyncio.wait_for(self._proc.wait(), 15)
        except TimeoutError:
            await self._kill()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 10)
        self._emit(self.tally.take())
        self._ctx.emit("event", source="ebpf", kind="tracer", action="stopped", tracers=self.tracers,
                       totals=dict(self.totals), exit_code=self._proc.returncode)
        self._proc = None

    async def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()


def target_pids(targets: dict[str, Any]) -> list[int]:
    """Live processes of the experiment's targets (a service's, a process target's)."""
    pids: set[int] = set()
    for t in targets.values():
        for proc in getattr(t, "processes", None) or []:
            with contextlib.suppress(Exception):
                if proc.alive():
                    pids.add(int(proc.pid))
    return sorted(pids)


def target_ports(targets: dict[str, Any]) -> list[int]:
    """Ports of the experiment's targets: the findings single out what happened on them."""
    from urllib.parse import urlsplit

    ports: set[int] = set()
    for t in targets.values():
        ports.update(int(p) for p in getattr(t, "ports", []) or [])
        spec = getattr(t, "spec", {}) or {}
        if isinstance(spec.get("port"), int):
            ports.add(spec["port"])
        url = getattr(t, "url", None)
        if url:
            with contextlib.suppress(ValueError):
                parts = urlsplit(url)
                ports.add(parts.port or (443 if parts.scheme == "https" else 80))
    return sorted(ports)


def _parse(line: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(line)
    except ValueError:
        return {}
    return msg if isinstance(msg, dict) else {}
