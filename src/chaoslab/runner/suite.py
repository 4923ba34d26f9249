"""Experiment suites: several experiments in order, with a pause between them, a grace period
for the system to be ready again, and one combined report (a row per experiment).

    name: Exchange resilience
    pause: 10s                   # between two experiments
    grace: 60s                   # after each: wait up to this long for `ready` to pass again
    ready: {http: {url: http://127.0.0.1:8000/health}}
    on_failure: continue         # or stop (after a violated, aborted or failed experiment)
    vars: {HOST: 127.0.0.1}
    experiments:
      - experiments/01-database-sudden-death.yaml
      - {path: experiments/02-network-partition.yaml, vars: {MODE: kernel}}

Every experiment file is validated before the first one runs: a mistake in the tenth file is
found before anything is injected.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import VERDICT_CODES, ExitCode, InputError
from ..experiment import seed002 as _seed002
from ..experiment.loader import LoadedExperiment, load_experiment
from ..experiment.model import ProbeSpec
from ..experiment.overlay import Overlay
from ..source import InputErrors, load_document
from ..units import Duration
from .run import RunOptions, new_run_id, run_experiment
from .verdict import RunResult


class SuiteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    path: str
    name: str | None = None
    vars: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(..., min_length=1)
    description: str = ""
    pause: Duration = 0.0
    grace: Duration = 60.0
    ready: ProbeSpec | None = Field(None, description="Checked before each experiment after the first, for up to `grace`.")
    on_failure: Literal["continue", "stop"] = "continue"
    vars: dict[str, str] = Field(default_factory=dict)
    experiments: list[SuiteEntry] = Field(..., min_length=1)


@dataclass
class Row:
    name: str
    path: str
    outcome: str
    exit_code: int
    reason: str | None = None
    run_dir: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0


@dataclass
class LoadedSuite:
    suite: Suite
    path: Path
    experiments: list[tuple[SuiteEntry, LoadedExperiment]]


def load_suite(path: str | Path, variables: dict[str, str] | None = None,
               overlay: Overlay | None = None) -> LoadedSuite:
    doc = load_document(path, overlay.variables(variables) if overlay else variables)
    if _seed002.is_seed_suite(doc.data):
        return _load_seed002(doc, Path(path), variables or {})
    suite = doc.validate(Suite)
    base = Path(path).resolve().parent
    errors: list[InputError] = []
    loaded = []
    for i, entry in enumerate(suite.experiments):
        exp_path = base / entry.path
        if not exp_path.is_file():
            errors.append(doc.error(("experiments", i), f"no such experiment file: {exp_path}"))
            continue
        try:
            loaded.append((entry, load_experiment(exp_path, {**suite.vars, **(variables or {}), **entry.vars},
                                                  overlay)))
        except InputErrors as exc:
            errors.extend(exc.errors)
        except InputError as exc:
            errors.append(exc)
    if errors:
        raise InputErrors(errors)
    return LoadedSuite(suite, Path(path).resolve(), loaded)


def _load_seed002(doc: Any, path: Path, variables: dict[str, str]) -> LoadedSuite:
    """Seed 002's JSON suite: each entry becomes a generated experiment file (kept, so the run's
    journal points at what actually ran) against ``NAMESPACE``/``SELECTOR`` pods."""
    import random
    import tempfile

    import yaml

    seed_suite = doc.validate(_seed002.SeedSuite)
    out_dir = Path(tempfile.mkdtemp(prefix="chaoslab-seed002-"))
    seed = random.SystemRandom().randrange(2**31)
    ns, sel = variables.get("NAMESPACE", "default"), variables.get("SELECTOR", "")
    entries, loaded = [], []
    for i, entry in enumerate(seed_suite.experiments):
        f = out_dir / f"{i + 1:02d}.yaml"
        f.write_text(yaml.safe_dump(_seed002.to_experiment(entry, ns, sel, seed + i), sort_keys=False))
        se = SuiteEntry(path=str(f), name=entry.name)
        entries.append(se)
        loaded.append((se, load_experiment(f, variables)))
    suite = Suite(name=seed_suite.name, description=seed_suite.description, experiments=entries)
    return LoadedSuite(suite, path.resolve(), loaded)


KEY_METRICS = (
    "detection_time", "time_to_recovery", "lost_writes", "duplicates",
    "error_rate.baseline", "error_rate.fault", "error_rate.recovery",
    "latency.p99.baseline", "latency.p99.fault", "latency.p99.recovery", "resilience_score",
)


async def _wait_ready(spec: ProbeSpec, grace: float) -> str | None:
    """None once the probe passes; the last error if it never does within ``grace``."""
    from .. import probes

    probe = probes.build("ready", spec, probes.ProbeContext({}))
    await probe.start()
    try:
        deadline = time.monotonic() + grace
        error = "not checked"
        while True:
            sample = await probe.sample()
            if sample.ok:
                return None
            error = sample.error or "failed"
            if time.monotonic() >= deadline:
                return error
            await asyncio.sleep(spec.every)
    finally:
        await probe.close()


def run_suite(loaded: LoadedSuite, runs_root: Path, options: RunOptions | None = None,
              on_start: Any = None) -> tuple[int, Path, list[Row]]:
    suite = loaded.suite
    suite_dir = runs_root / ("suite-" + new_run_id(suite.name))
    suite_dir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    stop_reason = None
    for i, (entry, exp) in enumerate(loaded.experiments):
        name = entry.name or exp.experiment.title
        if stop_reason is not None:
            rows.append(Row(name, entry.path, "skipped", 0, stop_reason))
            continue
        if i and suite.pause:
            time.sleep(suite.pause)
        if i and suite.ready is not None:  # the first experiment brings its stack up itself
            not_ready = asyncio.run(_wait_ready(suite.ready, suite.grace))
            if not_ready is not None:
                rows.append(Row(name, entry.path, "not-ready", 4, f"not ready after {suite.grace:g}s: {not_ready}"))
                if suite.on_failure == "stop":
                    stop_reason = "an earlier experiment failed"
                continue
        if on_start is not None:
            on_start(i, name)
        opts = options or RunOptions()
        opts = RunOptions(**{**opts.__dict__, "run_root": suite_dir, "listeners": list(opts.listeners)})
        t0 = time.monotonic()
        result: RunResult = run_experiment(exp, opts)
        metrics = result.analysis.metrics if result.analysis is not None else {}
        rows.append(Row(name, entry.path, result.outcome, result.exit_code, result.reason,
                        str(result.run_dir) if result.run_dir else None,
                        {k: metrics.get(k) for k in KEY_METRICS}, time.monotonic() - t0))
        interrupted = bool(result.reason and result.reason.startswith(("interrupted by", "halted")))
        if interrupted:
            stop_reason = result.reason
        elif result.exit_code != 0 and suite.on_failure == "stop":
            stop_reason = f"stopped after {name!r} ({result.outcome})"
    code = suite_exit_code(rows)
    write_suite_reports(suite, suite_dir, rows, code)
    return code, suite_dir, rows


def suite_exit_code(rows: list[Row]) -> int:
    codes = {r.exit_code for r in rows}
    for code in (ExitCode.COULD_NOT_RUN, ExitCode.ABORTED, ExitCode.VIOLATED):
        if code in codes:
            return int(code)
    return int(ExitCode.HELD)


def _cell(v: Any, key: str) -> str:
    if v is None:
        return "-"
    if key.startswith("latency") or key in ("detection_time", "time_to_recovery"):
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"
    if key.startswith("error_rate"):
        return f"{v:.2%}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def write_suite_reports(suite: Suite, suite_dir: Path, rows: list[Row], code: int) -> None:
    data = {"name": suite.name, "exit_code": code, "rows": [r.__dict__ for r in rows]}
    (suite_dir / "suite.json").write_text(json.dumps(data, indent=2, default=str))
    cols = ["detection_time", "time_to_recovery", "lost_writes", "error_rate.fault", "latency.p99.fault"]
    lines = [f"# {suite.name}", "", suite.description, "",
             "| experiment | verdict | " + " | ".join(cols) + " | run |",
             "|---|---|" + "---|" * len(cols) + "---|"]
    for r in rows:
        cells = " | ".join(_cell(r.metrics.get(c), c) for c in cols)
        run = f"[{Path(r.run_dir).name}]({Path(r.run_dir).name}/report.md)" if r.run_dir else (r.reason or "")
        lines.append(f"| {r.name} | {r.outcome.upper()} | {cells} | {run} |")
    (suite_dir / "suite.md").write_text("\n".join(lines) + "\n")
    from xml.sax.saxutils import quoteattr

    cases = []
    for r in rows:
        body = ""
        if r.exit_code == ExitCode.VIOLATED:
            body = f"<failure message={quoteattr(r.reason or 'hypothesis violated')}/>"
        elif r.exit_code:
            body = f"<error message={quoteattr(r.reason or r.outcome)}/>"
        elif r.outcome == "skipped":
            body = f"<skipped message={quoteattr(r.reason or '')}/>"
        cases.append(f'  <testcase classname="suite" name={quoteattr(r.name)} time="{r.duration:.1f}">{body}</testcase>')
    failures = sum(r.exit_code == ExitCode.VIOLATED for r in rows)
    errors = sum(r.exit_code not in VERDICT_CODES for r in rows)
    (suite_dir / "junit.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr(suite.name)} tests="{len(rows)}" '
        f'failures="{failures}" errors="{errors}">\n' + "\n".join(cases) + "\n</testsuite>\n"
    )
