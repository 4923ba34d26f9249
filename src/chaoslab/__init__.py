"""chaoslab: chaos engineering on one Linux machine.

Public API (imported lazily so the CLI starts fast)::

    from chaoslab import load_experiment, run_experiment, RunOptions
    result = run_experiment(load_experiment("exp.yaml"))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_experiment": "chaoslab.experiment.loader",
    "LoadedExperiment": "chaoslab.experiment.loader",
    "Experiment": "chaoslab.experiment.model",
    "run_experiment": "chaoslab.runner.run",
    "Run": "chaoslab.runner.run",
    "RunOptions": "chaoslab.runner.run",
    "RunResult": "chaoslab.runner.verdict",
    "ChaosSession": "chaoslab.runner.session",
    "Stack": "chaoslab.stack",
    "load_suite": "chaoslab.runner.suite",
    "run_suite": "chaoslab.runner.suite",
    "Fault": "chaoslab.faults.base",
    "register": "chaoslab.faults",
    "ResolvedTarget": "chaoslab.targets",
    "TargetSpec": "chaoslab.targets",
    "ChaoslabError": "chaoslab.errors",
    "InputError": "chaoslab.errors",
    "CapabilityError": "chaoslab.errors",
    "FaultError": "chaoslab.errors",
    "TargetError": "chaoslab.errors",
    "CouldNotRun": "chaoslab.errors",
    "ExitCode": "chaoslab.errors",
    "analyze": "chaoslab.analysis",
    "write_reports": "chaoslab.report",
    "Registry": "chaoslab.registry",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'chaoslab' has no attribute {name!r}")
