"""One owner per system setting a fault changes, so that overlapping faults stack.

A *setting* is one value somewhere in the system: a cgroup file, a process's rlimit, a process's
membership in a cgroup hierarchy, a proxy link's enabled flag, the existence of an nft table.
Faults never save "the old value" themselves: two faults on the same setting would each save
what they saw, and the one that ends first would put back the other's value (or wipe the value
the other restores). Instead every setting has one record, keyed by its identity::

    {"key": "cgroup:/sys/fs/cgroup/cpu/api:cpu.cfs_period_us+cpu.cfs_quota_us",
     "original": [...],                        # read once, by the first holder
     "holders": [{"holder": "run-1/ab12", "value": [...]}, ...]}   # oldest first

The newest holder's value is in force. Releasing a holder that is not the newest changes
nothing in the system; releasing the newest applies the next one's value; releasing the last
one writes ``original`` back and deletes the record. Holders may end in any order.

Records live next to the ledger (``state_dir()/owners``), written like ledger entries (new file,
fsync, rename, fsync of the directory), and always *before* the system changes: after a SIGKILL,
``chaoslab recover`` rebuilds each fault from its ledger entry, the fault releases its holder
here, and the same record tells what to put back. Every step is idempotent (a release of a
holder that is not in the record does nothing), so a recover killed halfway can be run again.
A file lock serialises all changes, across threads and processes.

This module is a leaf: it imports nothing from chaoslab.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    """Where chaoslab keeps machine-wide state: the ledger, owner records and the halt flag."""
    env = os.environ.get("CHAOSLAB_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/chaoslab")
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "chaoslab"


def owners_root() -> Path:
    return state_dir() / "owners"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically: after a crash it holds the old or the new content, never a mix."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class SettingGone(Exception):
    """The thing the setting belongs to is gone (process exited, cgroup removed): nothing to write."""


class Setting(ABC):
    """How to read and write one setting; its ``key`` is its identity on this machine."""

    @property
    @abstractmethod
    def key(self) -> str: ...

    @abstractmethod
    def read(self) -> Any:
        """The current value, JSON-able. Raises SettingGone when there is nothing to read."""

    @abstractmethod
    def write(self, value: Any) -> None:
        """Put ``value`` in force. Raises SettingGone when there is nothing to write to."""


def new_holder(run_id: str) -> str:
    """A holder id unique to one fault instance (a fault stores it in its state before holding)."""
    return f"{run_id or 'norun'}/{uuid.uuid4().hex[:12]}"


class Owners:
    """The owner records under one directory (``owners_root()`` unless told)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.dir = Path(root) if root is not None else owners_root()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        # A fresh open file description per call: flock then excludes other threads too.
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _path(self, key: str) -> Path:
        return self.dir / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")

    def _load(self, key: str) -> dict[str, Any] | None:
        try:
            rec: dict[str, Any] = json.loads(self._path(key).read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None  # a torn write cannot happen (rename); an unreadable file is not ours
        return rec if rec.get("key") == key else None

    def hold(self, setting: Setting, holder: str, value: Any | Callable[[Any], Any]) -> Any:
        """Make ``holder``'s value the one in force on ``setting``; returns the value in force before.

        ``value`` may be a function of the value in force before (e.g. an rlimit that keeps the
        current hard limit). The record (with this holder) is on disk before the system changes;
        when the write fails, the holder is released again and the error raised."""
        with self._locked():
            rec = self._load(setting.key)
            if rec is None:
                rec = {"key": setting.key, "original": setting.read(), "holders": [], "created": time.time()}
            holders: list[dict[str, Any]] = [h for h in rec["holders"] if h["holder"] != holder]
            before = holders[-1]["value"] if holders else rec["original"]
            v = value(before) if callable(value) else value
            holders.append({"holder": holder, "value": v, "since": time.time()})
            rec["holders"] = holders
            write_durably(self._path(setting.key), rec)
            try:
                setting.write(v)
            except BaseException:
                self._release(setting, holder)
                raise
            return before

    def release(self, setting: Setting, holder: str) -> None:
        """Drop ``holder``; put back the next holder's value, or the original after the last one.
        Idempotent: a holder that is not in the record (already released) changes nothing."""
        with self._locked():
            self._release(setting, holder)

    def _release(self, setting: Setting, holder: str) -> None:
        path = self._path(setting.key)
        rec = self._load(setting.key)
        if rec is None:
            return
        holders: list[dict[str, Any]] = rec["holders"]
        idx = next((i for i, h in enumerate(holders) if h["holder"] == holder), None)
        if idx is None:
            return
        was_newest = idx == len(holders) - 1
        rest = holders[:idx] + holders[idx + 1:]
        if not rest:
            # Write first, forget after: a crash in between leaves the record (and the ledger
            # entry of this holder), so recover writes the original again.
            with contextlib.suppress(SettingGone):
                setting.write(rec["original"])
            path.unlink(missing_ok=True)
            fsync_dir(self.dir)
            return
        if was_newest:
            with contextlib.suppress(SettingGone):
                setting.write(rest[-1]["value"])
        rec["holders"] = rest
        write_durably(path, rec)

    def reapply(self, setting: Setting, holder: str) -> bool:
        """Write ``holder``'s recorded value again when it is the one in force (the newest holder),
        for a value whose effect moves with time (a clock drift is an offset that grows): the
        record does not change. False when another holder's value is in force."""
        with self._locked():
            rec = self._load(setting.key)
            if rec is None or not rec["holders"] or rec["holders"][-1]["holder"] != holder:
                return False
            setting.write(rec["holders"][-1]["value"])
            return True

    def record(self, key: str) -> dict[str, Any] | None:
        """The record of ``key`` as on disk (for tests and ``chaoslab recover --list``)."""
        return self._load(key)

    def records(self) -> list[dict[str, Any]]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
        return out


class HeldSettings:
    """What one fault instance holds, kept in its ``state`` (so a fault rebuilt from the ledger
    releases exactly the same holders): ``state["owners"] = {"dir": ..., "holder": ...}``."""

    def __init__(self, state: dict[str, Any], run_id: str) -> None:
        self.state = state
        info = state.get("owners")
        if not isinstance(info, dict):
            info = {"dir": str(owners_root()), "holder": new_holder(run_id)}
            state["owners"] = info
        self.owners = Owners(info["dir"])
        self.holder: str = str(info["holder"])

    def hold(self, setting: Setting, value: Any | Callable[[Any], Any]) -> Any:
        return self.owners.hold(setting, self.holder, value)

    def release(self, setting: Setting) -> None:
        self.owners.release(setting, self.holder)

    def reapply(self, setting: Setting) -> bool:
        return self.owners.reapply(setting, self.holder)
