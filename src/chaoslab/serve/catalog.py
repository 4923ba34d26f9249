"""The experiments and suites under ``--experiments``, loaded the way ``chaoslab validate`` loads
them (so a broken file shows its one-line error instead of vanishing from the catalog)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..experiment.loader import load_experiment
from .security import inside

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Entry:
    name: str
    """Path relative to the experiments directory, slash-separated: the catalog's key."""
    path: Path
    kind: str = "experiment"  # or "suite", or "invalid"
    title: str = ""
    description: str = ""
    faults: list[str] = field(default_factory=list)
    error: str | None = None


def _entry(root: Path, path: Path, variables: dict[str, str]) -> Entry:
    name = path.relative_to(root).as_posix()
    try:
        exp = load_experiment(path, variables).experiment
    except InputError as exc:
        # Not an experiment: a suite, perhaps (loaded lazily: suites import the runner).
        from ..runner.suite import load_suite

        try:
            suite = load_suite(path, variables)
        except InputError:
            return Entry(name, path, "invalid", path.name, error=str(exc).splitlines()[0])
        return Entry(name, path, "suite", suite.suite.name, (suite.suite.description or "").strip(),
                     faults=[e.experiment.title for _, e in suite.experiments])
    steps = [f"{s.fault} on {s.target or '-'}" for s in exp.method]
    return Entry(name, path, "experiment", exp.title, (exp.description or "").strip(), steps)


def entries(root: Path, variables: dict[str, str]) -> list[Entry]:
    if not root.is_dir():
        return []
    files = sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    return [_entry(root, p, variables) for p in files]


def find(root: Path, name: str, variables: dict[str, str]) -> Entry:
    from .security import Refused

    path = inside(root, name, "experiment")
    if path.suffix not in SUFFIXES or not path.is_file():
        raise Refused(404, f"no such experiment: {name!r}")
    return _entry(root.resolve(), path.resolve(), variables)
