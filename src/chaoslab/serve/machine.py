"""``chaoslab doctor``'s report for the This machine page, kept for a short while.

The report comes from a ``chaoslab doctor --json`` child, not from the console's own process:
the capability checks are cached per process (``capabilities.check``), so a console running for
days would otherwise show the machine as it was when it started (docker since started, a tool
since installed). A page load uses the report while it is younger than ``FRESH``, else checks
again; "check again" on the page forces it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

#: A report this young is shown as it is; an older one is checked again on the next page load.
FRESH = 30.0
TIMEOUT = 60.0


@dataclass
class Checked:
    report: dict[str, Any] | None
    error: str | None
    at: float
    """Wall-clock time of the check."""
    seconds: float
    """How long it took."""
    _mono: float

    def age(self) -> float:
        return time.monotonic() - self._mono


def check_now(timeout: float = TIMEOUT) -> Checked:
    start = time.monotonic()
    at = time.time()
    try:
        proc = subprocess.run([sys.executable, "-m", "chaoslab", "doctor", "--json"], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return Checked(None, f"chaoslab doctor took more than {timeout:.0f} s", at, timeout, start)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return Checked(None, f"chaoslab doctor failed (exit {proc.returncode}): {tail[0]}", at,
                       time.monotonic() - start, start)
    return Checked(report, None, at, time.monotonic() - start, start)


class Doctor:
    """The last report, and one check at a time however many pages ask."""

    def __init__(self) -> None:
        self.last: Checked | None = None
        self._lock = asyncio.Lock()

    async def report(self, *, force: bool = False) -> Checked:
        async with self._lock:
            if force or self.last is None or self.last.age() >= FRESH:
                self.last = await asyncio.to_thread(check_now)
            return self.last
