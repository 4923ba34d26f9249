"""``init --measure 60s``: watch the live system before writing any bound.

The probes ``init`` is about to write are sampled with chaoslab's own probe classes (the same
code that samples them during a run), and ``--load URL`` is driven by chaoslab's own open-model
load generator, so a bound like "p99 under the fault at most 5x the baseline's" rests on the
same measurement the run will make. Containers' memory in use is read from Docker's stats, for
a memory limit that actually presses.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import System


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class ProbeFigures:
    samples: int = 0
    ok: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def availability(self) -> float:
        return self.ok / self.samples if self.samples else 0.0

    @property
    def p99(self) -> float | None:
        return _p(self.latencies, 0.99)

    def summary(self) -> str:
        p99 = f", p99 {self.p99 * 1000:.1f} ms" if self.p99 is not None else ""
        return f"measured {self.ok}/{self.samples} ok over {self.seconds:g}s{p99}"


@dataclass
class LoadFigures:
    ops: int
    error_rate: float
    p99: float | None
    seconds: float


@dataclass
class Measurement:
    seconds: float
    probes: dict[str, ProbeFigures] = field(default_factory=dict)
    load: LoadFigures | None = None
    memory: dict[str, int] = field(default_factory=dict)   # service -> bytes in use

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "probes": {k: {"samples": v.samples, "ok": v.ok, "p99": v.p99} for k, v in self.probes.items()},
            "load": None if self.load is None else vars(self.load),
            "memory": self.memory,
        }


async def _sample(name: str, spec: Any, every: float, seconds: float, out: ProbeFigures) -> None:
    from .. import probes
    from ..probes.base import ProbeContext

    probe = probes.build(name, spec, ProbeContext(targets={}))
    await probe.start()
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        k = 0
        while loop.time() - start < seconds:
            s = await probe.sample()
            out.samples += 1
            if s.ok:
                out.ok += 1
                if s.latency is not None:
                    out.latencies.append(s.latency)
            k += 1
            await asyncio.sleep(max(0.0, start + k * every - loop.time()))
    finally:
        await probe.close()
        out.seconds = round(loop.time() - start, 1)


async def _load(url: str, seconds: float, history: Path) -> LoadFigures:
    from ..experiment.workload import LoadSpec
    from ..journal import RunClock
    from ..load.generator import LoadGenerator

    spec = LoadSpec.model_validate({"http": {"url": url, "method": "GET", "rate": "20/s", "timeout": "2s"}})
    gen = LoadGenerator(spec, RunClock(), history)
    stop = asyncio.Event()
    task = asyncio.create_task(gen.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    ops = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    ops = [o for o in ops if "outcome" in o and not o.get("cut")]
    ok = [o["latency"] for o in ops if o["outcome"] == "ok" and o.get("latency") is not None]
    return LoadFigures(len(ops), 1 - len(ok) / len(ops) if ops else 1.0, _p(ok, 0.99), seconds)


def _stats(container: Any) -> dict[str, Any]:
    """One stats read: ``one_shot`` (API 1.41) answers at once, without it Docker waits for a
    second sample (2 s a container)."""
    from docker.errors import InvalidVersion

    try:
        return dict(container.stats(stream=False, one_shot=True))
    except InvalidVersion:
        return dict(container.stats(stream=False))


def memory_in_use(system: System) -> dict[str, int]:
    """Bytes in use by each Compose service's first container (cgroup v1 or v2, via Docker): one
    read each, no watch, so init reads it of any running project, --measure or not."""
    if system.platform != "compose" or not system.live:
        return {}
    from ..platforms import docker
    from ..targets.docker import PROJECT_LABEL, SERVICE_LABEL

    first: dict[str, Any] = {}  # each service's first container
    for c in docker.client().containers.list(filters={"label": f"{PROJECT_LABEL}={system.name}"}):
        service = c.labels.get(SERVICE_LABEL)
        if service in system.services:
            first.setdefault(service, c)

    def usage(c: Any) -> int:
        try:
            return int((_stats(c).get("memory_stats") or {}).get("usage") or 0)
        except Exception:  # a container that just stopped: no figure, the default limit stays
            return 0

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:  # a read waits on Docker, not on us
        used = dict(zip(first, pool.map(usage, first.values()), strict=True))
    return {service: n for service, n in used.items() if n}


def measure(system: System, probes: dict[str, dict[str, Any]], seconds: float, load_url: str | None) -> Measurement:
    """Sample every HTTP and TCP probe (and the load) for ``seconds``; the rest is not timed."""
    from ..experiment.model import ProbeSpec
    from ..units import parse_duration

    m = Measurement(seconds)
    jobs = []
    for name, raw in probes.items():
        spec = ProbeSpec.model_validate(raw)
        if spec.kind not in ("http", "tcp"):
            continue
        m.probes[name] = ProbeFigures()
        jobs.append((name, spec, parse_duration(raw.get("every", "1s"))))

    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="chaoslab-measure-") as tmp:
            tasks = [_sample(name, spec, every, seconds, m.probes[name]) for name, spec, every in jobs]
            if load_url:
                async def load() -> None:
                    m.load = await _load(load_url, seconds, Path(tmp) / "history.jsonl")
                tasks.append(load())
            await asyncio.gather(*tasks)

    asyncio.run(main())
    m.memory = memory_in_use(system)
    return m
