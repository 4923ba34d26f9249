"""Can eBPF tracing run here? The doctor's checks (root, bpftrace, tracefs), plus mounting tracefs.

Every refusal is the doctor's own sentence, so a skipped tracer reads the same in the journal as
in ``chaoslab doctor``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import CapabilityError
from ..system import capabilities

TRACEFS = Path("/sys/kernel/tracing")


def ensure_tracefs() -> None:
    """Mount tracefs when it is absent (bpftrace resolves tracepoints through it)."""
    if "tracefs" in capabilities.denied() or capabilities.check("tracefs").ok:
        return
    if os.geteuid() == 0 and TRACEFS.is_dir():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True, timeout=10)
        capabilities._run.cache_clear()  # the cached "not mounted" is stale now


def require_ebpf() -> str:
    """Path of bpftrace, or ``CapabilityError`` with the doctor's reason."""
    capabilities.require("root", "bpftrace")
    ensure_tracefs()
    capabilities.require("tracefs")
    return capabilities.check("bpftrace").detail


def missing_tracepoints(bpftrace: str, tracepoints: list[str]) -> list[str]:
    """Tracepoints this kernel lacks (``bpftrace -l`` lists what exists)."""
    missing = []
    for tp in tracepoints:
        category, _, name = tp.partition(":")
        if not (TRACEFS / "events" / category / name).is_dir():
            proc = subprocess.run([bpftrace, "-l", f"tracepoint:{tp}"], capture_output=True, text=True, timeout=30)
            if f"tracepoint:{tp}" not in proc.stdout.split():
                missing.append(tp)
    return missing


__all__ = ["CapabilityError", "ensure_tracefs", "missing_tracepoints", "require_ebpf"]
