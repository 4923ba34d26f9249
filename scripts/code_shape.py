"""The shape of the code in figures, for issue 26's before and after: modules and lines, modules
at the package root, import cycles and packages that import each other (read by the same code
as tests/test_architecture.py, this checkout's copy), the longest functions and modules, and the repetition the
refactor removed (``Params =`` lines, casts, faults testing a target's kind).

    python scripts/code_shape.py            # this checkout
    git worktree add /tmp/old deccb0f && PYTHONPATH=/tmp/old/src python scripts/code_shape.py /tmp/old
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    # this checkout's rules, read on the tree chaoslab is imported from (PYTHONPATH picks it)
    rules = Path(__file__).resolve().parent.parent / "tests" / "test_architecture.py"
    spec = importlib.util.spec_from_file_location("architecture", rules)
    assert spec and spec.loader
    arch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(arch)
    src = arch.SRC
    if not src.is_relative_to(root):
        sys.exit(f"chaoslab is imported from {src}, not from {root}: set PYTHONPATH={root}/src")
    mods = arch._modules()
    graph = arch._graph()
    ties = sorted("<->".join(sorted(t)) for t in arch._ties(graph))
    funcs: list[tuple[int, str]] = []
    lines: dict[str, int] = {}
    texts: dict[str, str] = {}
    for mod, (path, _) in mods.items():
        texts[mod] = text = path.read_text()
        lines[mod] = text.count("\n")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                funcs.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(src.parent)}:{node.name}"))
    funcs.sort(reverse=True)
    biggest = sorted(lines.items(), key=lambda kv: -kv[1])[:3]
    kind_tests = sum(len(re.findall(r"CONTAINER_KINDS|\.kind (?:in|==|!=) ", t)) for m, t in texts.items() if ".faults." in m)
    rows = [
        ("modules (lines)", f"{len(mods)} ({sum(lines.values())})"),
        ("modules at the root of chaoslab", sum(1 for m, (_, pkg) in mods.items() if m.count(".") == 1 and not pkg)),
        ("import cycles between files", len(arch._cycles(graph))),
        ("packages that import each other", f"{len(ties)} {ties}"),
        ("longest functions", "; ".join(f"{n} ({k})" for k, n in funcs[:3])),
        ("longest modules", "; ".join(f"{m} ({k})" for m, k in biggest)),
        ("'Params =' lines", sum(len(re.findall(r"^    Params = ", t, re.M)) for t in texts.values())),
        ("cast( calls", sum(t.count("cast(") for t in texts.values())),
        ("target-kind tests in faults/", kind_tests),
        ("top-level packages in src/", sorted(p.name for p in src.parent.iterdir() if (p / "__init__.py").exists())),
    ]
    for name, value in rows:
        print(f"{name:<33} {value}")


if __name__ == "__main__":
    main()
