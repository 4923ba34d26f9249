"""chaoslab's wheel holds chaoslab alone (issue 26): a user's ``pip install chaoslab`` puts no
other top-level name on their path. The reference exchange and pipeline the demo and the tests
attack are distributions of their own (systems/), each wheel holding its one package.

The wheels are built offline with the venv's own setuptools (``--no-build-isolation``), from a
copy of the sources: an in-tree build would leave build/ and *.egg-info in the checkout, and the
copy holds what git tracks, not an old layout's leftover __pycache__ directories."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Each distribution of the repository: its directory and the one top-level package it ships.
DISTRIBUTIONS = {
    "chaoslab": (ROOT, "chaoslab"),
    "chaoslab-exchange": (ROOT / "systems" / "exchange", "chaoslab_exchange"),
    "chaoslab-pipeline": (ROOT / "systems" / "pipeline", "chaoslab_pipeline"),
}


def build_wheel(project: Path, tmp: Path) -> Path:
    """The wheel of the project at ``project`` (its pyproject.toml, README.md and src/)."""
    copy = tmp / "source"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (project / name).exists():
            shutil.copy(project / name, copy / name)
    shutil.copytree(
        project / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = tmp / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(copy)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Each distribution's wheel, built once for the module (chaoslab's serves two tests)."""
    built: dict[str, Path] = {}

    def get(dist: str) -> Path:
        if dist not in built:
            built[dist] = build_wheel(DISTRIBUTIONS[dist][0], tmp_path_factory.mktemp(dist))
        return built[dist]

    return get


def top_level(names: list[str]) -> set[str]:
    return {n.split("/", 1)[0] for n in names}


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
def test_each_wheel_holds_its_one_package(dist: str, wheel_of: Callable[[str], Path]) -> None:
    package = DISTRIBUTIONS[dist][1]
    wheel = wheel_of(dist)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = f"{dist.replace('-', '_')}-0.1.0.dist-info"
        assert top_level(names) == {package, info}
        assert zf.read(f"{info}/top_level.txt").decode().split() == [package]
    assert f"{package}/__init__.py" in names


def test_installing_chaoslab_puts_nothing_but_chaoslab_on_the_path(
    wheel_of: Callable[[str], Path], tmp_path: Path
) -> None:
    """``pip install`` of the built wheel into an empty venv: its site-packages gains chaoslab
    and its dist-info, no other importable name, and no .pth file that would add one."""
    wheel = wheel_of("chaoslab")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    (site,) = venv.glob("lib/python3*/site-packages")
    before = set(p.name for p in site.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "--no-deps", "--no-index", "--no-compile", str(wheel)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    added = set(p.name for p in site.iterdir()) - before
    assert added == {"chaoslab", "chaoslab-0.1.0.dist-info"}
    assert [m.name for m in pkgutil.iter_modules([str(site)])] == ["chaoslab"]
    assert (site / "chaoslab" / "py.typed").exists()
