"""The global halt (AWS FIS style): one flag file stops every running experiment on this machine.

``chaoslab halt`` writes the flag; each runner polls it (every 100 ms) and aborts, reverting its
faults; ``chaoslab run`` refuses to start while the flag is set, until ``chaoslab halt --clear``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .ledger import state_dir, write_durably


def halt_file() -> Path:
    return state_dir() / "HALT"


def halt(reason: str) -> Path:
    path = halt_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_durably(path, {"reason": reason, "time": time.time()})
    return path


def halted() -> str | None:
    """The halt reason, or None when no halt is in force."""
    path = halt_file()
    try:
        data = json.loads(path.read_text())
        return str(data.get("reason") or "halted")
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return "halted"


def clear() -> bool:
    try:
        halt_file().unlink()
        return True
    except FileNotFoundError:
        return False
