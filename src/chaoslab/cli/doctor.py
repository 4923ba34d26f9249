"""``chaoslab doctor``: the capability checks (``capabilities``) and which faults can run here.

The command sits above the fault families: it owns the fault table, built from the fault
registry, so nothing below it has to know about the command.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import click

from .. import faults
from ..errors import CapabilityError
from ..faults.base import Fault
from ..system.capabilities import check, run_all


@dataclass(frozen=True)
class FaultRow:
    fault: str
    ok: bool
    reason: str | None
    instead: str | None


def fault_table() -> list[FaultRow]:
    """Every registered fault: can it run here, and if not why and what instead."""
    rows = []
    for name, cls in _faults().items():
        try:
            cls.check()
        except CapabilityError as exc:
            rows.append(FaultRow(name, False, exc.reason, exc.instead))
        else:
            rows.append(FaultRow(name, True, None, None))
    return rows


def _faults() -> dict[str, type[Fault[Any]]]:
    # A family that fails to import must not hide the others (nor break the doctor).
    return faults.all_faults(skip_broken=True)


# --- the command ----------------------------------------------------------------------------

def report() -> dict[str, Any]:
    start = time.perf_counter()
    checks = run_all()
    rows = fault_table()
    kinds = {name: cls.target_kinds or frozenset() for name, cls in _faults().items()}
    on_containers = [r.fault for r in rows if r.ok and "container" in kinds.get(r.fault, frozenset())]
    return {
        "capabilities": [asdict(c) for c in checks],
        "faults": [asdict(r) for r in rows],
        "container_faults": on_containers if check("docker").ok else [],
        "seconds": round(time.perf_counter() - start, 4),
    }


def _render(data: dict[str, Any]) -> str:
    lines = ["Capabilities"]
    caps = data["capabilities"]
    width = max(len(c["name"]) for c in caps)
    for c in caps:
        mark = "ok " if c["ok"] else "-- "
        extra = f"  (instead: {c['instead']})" if not c["ok"] and c["instead"] else ""
        lines.append(f"  {mark}{c['name']:<{width}}  {c['detail']}{extra}")
    rows = data["faults"]
    lines += ["", "Faults"]
    if rows:
        fw = max(len(r["fault"]) for r in rows)
        for r in rows:
            if r["ok"]:
                lines.append(f"  yes  {r['fault']}")
            else:
                extra = f"; instead: {r['instead']}" if r["instead"] else ""
                lines.append(f"  no   {r['fault']:<{fw}}  {r['reason']}{extra}")
    if "container_faults" in data:
        lines += ["", "On Docker containers: " + (", ".join(data["container_faults"]) or "none (Docker is not reachable)")]
    ok = sum(1 for r in rows if r["ok"])
    lines += ["", f"{ok}/{len(rows)} faults can run here (checked in {data['seconds']}s)"]
    return "\n".join(lines)


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """What this machine can do, and which faults can run here (and if not, why and what instead)."""
    data = report()
    click.echo(json.dumps(data, indent=2) if as_json else _render(data))


__all__ = ["FaultRow", "doctor", "fault_table", "report"]
