"""What the console changes, done the way chaoslab already does it from a shell.

- Run: a ``chaoslab run`` child (``chaoslab suite run`` for a suite) in its own session
  (``start_new_session``), its output to a log file: the console may stop, crash or restart and
  the run goes on, reverting its own faults.
- Halt one run: SIGTERM to its runner, which is how ``chaoslab run`` is told to abort (it reverts
  its faults, runs its rollbacks and exits 3; docs/runs.md). The runner is named by the ledger's
  ``run.json`` (pid and start time), so a pid reused by another process is never signalled.
- Halt all / clear: ``chaoslab halt`` and ``chaoslab halt --clear``'s own functions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..runner import halt as halt_flag
from ..runner.ledger import RunLedger, ledger_root
from . import rundir
from .security import Refused


@dataclass
class Launch:
    """A ``chaoslab run`` (or ``suite run``) the console started; its run id is known once its
    journal names it (a suite's first experiment's)."""

    pid: int
    experiment: str
    log: Path
    kind: str = "experiment"
    started: float = field(default_factory=time.time)
    run_id: str | None = None
    exit_code: int | None = None


class Launcher:
    def __init__(self, runs_dir: Path, variables: dict[str, str]) -> None:
        self.runs_dir = runs_dir
        self.variables = variables
        self.launches: dict[int, Launch] = {}
        self._lock = threading.Lock()

    def argv(self, experiment: Path, *extra: str, kind: str = "experiment") -> list[str]:
        # a suite runs its experiments in the one ``chaoslab suite run`` process, as from a shell
        command = ["suite", "run"] if kind == "suite" else ["run"]
        argv = [sys.executable, "-m", "chaoslab", *command, str(experiment), "--runs-dir", str(self.runs_dir), *extra]
        for k, v in self.variables.items():
            argv += ["--var", f"{k}={v}"]
        return argv

    def start(self, experiment: Path, kind: str = "experiment") -> Launch:
        logs = self.runs_dir / ".console"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"launch-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{len(self.launches)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                self.argv(experiment, "--quiet", kind=kind), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        launch = Launch(proc.pid, str(experiment), log, kind=kind)
        with self._lock:
            self.launches[proc.pid] = launch
        # Reap the child when it ends (no zombie while the console lives); the run itself does
        # not depend on this thread: if the console goes, init adopts the run.
        threading.Thread(target=self._reap, args=(proc, launch), daemon=True).start()
        return launch

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes], launch: Launch) -> None:
        launch.exit_code = proc.wait()

    def find_run(self, launch: Launch) -> str | None:
        """The run directory whose journal's ``run`` record names this child's pid (a suite's
        runs are one level down, ``suite-<id>/<run id>/``, all written by the suite's process)."""
        if launch.run_id is not None:
            return launch.run_id
        dirs = self._fresh_dirs(self.runs_dir, launch.started)
        for suite in [d for d in dirs if d.name.startswith("suite-")]:
            dirs += self._fresh_dirs(suite, launch.started)
        for d in sorted(dirs, key=lambda d: d.name):
            state = rundir.JournalState()
            state.read_on(d / "journal.jsonl")
            if state.pid == launch.pid:
                launch.run_id = d.name
                return d.name
        return None

    @staticmethod
    def _fresh_dirs(parent: Path, since: float) -> list[Path]:
        try:
            dirs = [d for d in parent.iterdir() if d.is_dir() and not d.name.startswith(".")]
            return [d for d in dirs if d.stat().st_mtime >= since - 5]
        except OSError:
            return []

    def plan(self, experiment: Path, timeout: float = 60.0) -> tuple[int, str]:
        """``chaoslab run --dry-run``'s plan, from a child so that nothing it resolves or loads
        stays in the console's process."""
        try:
            proc = subprocess.run(self.argv(experiment, "--dry-run"), capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            return 4, f"the dry run took more than {timeout:.0f} s"
        return proc.returncode, (proc.stdout + proc.stderr).strip()


def halt_run(run_id: str, ledger_dir: Path | None = None) -> str:
    """SIGTERM to the runner of ``run_id``, found and checked through its ledger."""
    ledger = RunLedger((ledger_dir or ledger_root()) / run_id)
    if not ledger.dir.is_dir():
        raise Refused(409, f"run {run_id} is not running (no ledger entry for it on this machine)")
    if not ledger.runner_alive():
        raise Refused(409, f"the runner of {run_id} is not alive; if faults remain, use `chaoslab recover`")
    pid = int(ledger.meta["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise Refused(409, f"run {run_id} ended meanwhile") from None
    return f"asked run {run_id} (pid {pid}) to abort; it reverts its faults and exits 3"


def halt_all(reason: str) -> str:
    path = halt_flag.halt(reason or "halt from the console")
    return f"halt in force ({path}); running experiments revert and stop within 0.1 s"


def clear_halt() -> str:
    return "halt cleared" if halt_flag.clear() else "no halt was in force"
