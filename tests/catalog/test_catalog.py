"""The exchange experiment catalog against the real exchange stack: every file validates, and 01
(database sudden death) and 07 (Redis failure) hold their hypotheses with short windows and
leave nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psutil
import pytest
from tests.conftest import PY, ROOT, assert_held

from chaoslab.runner import ledger
from chaoslab.system import cgroups

from .conftest import EXPERIMENTS

SUITE = ROOT / "examples" / "exchange" / "suite.yaml"

SHORT = {
    "01-database-sudden-death.yaml": ["FAULT_AT=5s", "DOWN_FOR=4s", "RECOVERY=8s"],
    "07-redis-cache-failure.yaml": ["FAULT_AT=4s", "FAULT_FOR=6s", "RECOVERY=8s"],
}


def _chaoslab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "chaoslab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def test_validate_accepts_the_catalog_and_the_suite() -> None:
    files = sorted(EXPERIMENTS.glob("*.yaml"))
    assert [f.name[:2] for f in files] == [f"{i:02d}" for i in range(1, 12)]
    for f in files:
        proc = _chaoslab("validate", str(f))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _chaoslab("suite", "validate", str(SUITE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "11 experiments" in proc.stdout


def _leftovers(run_id: str, stack_file: Path) -> list[str]:
    """Everything a run could leave behind: ledger entries, fault cgroups, its nftables table,
    a stopped or frozen service."""
    found = [f"ledger entry {e}" for r in ledger.runs() for e in r.entries()]
    for root in cgroups.mounts().values():
        found += [f"cgroup {p}" for p in Path(root).glob(f"chaoslab-{run_id}*")]
    nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10)
    table = "chaoslab_" + "".join(c if c.isalnum() or c == "_" else "_" for c in run_id)
    if table in nft.stdout:
        found.append(f"nftables table {table}")
    from chaoslab.stack import Stack

    for name, svc in Stack.load(stack_file).ps()["services"].items():
        pid = svc.get("pid")
        if pid and psutil.Process(int(pid)).status() == psutil.STATUS_STOPPED:
            found.append(f"{name} is stopped")
        freezer = (svc.get("cgroups") or {}).get("freezer")
        if freezer and Path(freezer, "freezer.state").exists():
            state = Path(freezer, "freezer.state").read_text().strip()
            if state != "THAWED":
                found.append(f"{name} is {state}")
    return found


@pytest.mark.parametrize("name", sorted(SHORT))
def test_headline_experiment_holds_and_leaves_nothing(
    name: str, exchange: Path, tmp_path: Path, state_dir: Path
) -> None:
    runs = tmp_path / "runs"
    args = [a for v in SHORT[name] for a in ("--var", v)]
    proc = _chaoslab("run", str(EXPERIMENTS / name), *args, "--runs-dir", str(runs), timeout=150)
    (run_dir,) = runs.iterdir()
    analysis = json.loads((run_dir / "summary.json").read_text())["analysis"]
    assert_held(proc, analysis)
    loss = analysis["data_loss"]
    # The data-loss check really ran over this run's orders (not "unknown", not empty).
    assert loss["status"].lower() == "checked" and loss["lost"] == [] and loss["acknowledged"] > 300
    # The fault was felt by the system: /health left "healthy" during the fault.
    assert analysis["metrics"]["detection_time"] is not None
    assert _leftovers(run_dir.name, exchange) == []
