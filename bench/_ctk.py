"""A separate venv with Chaos Toolkit from PyPI, for side-by-side benchmarks (never imported by chaoslab)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CTK_VENV = Path(__file__).resolve().parent / ".venv-chaostoolkit"


def ctk_python() -> Path:
    py = CTK_VENV / "bin" / "python"
    if not py.exists():
        print("installing Chaos Toolkit into", CTK_VENV, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(CTK_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "chaostoolkit>=1.19"], check=True)
    return py


def ctk_version() -> str:
    out = subprocess.run([str(ctk_python()), "-c", "import chaoslib, chaostoolkit; print(chaostoolkit.__version__, chaoslib.__version__)"],
                         capture_output=True, text=True, check=True)
    toolkit, lib = out.stdout.split()
    return f"chaostoolkit {toolkit} (chaoslib {lib})"
