"""Regenerate docs/faults.md and docs/experiment.schema.json from the code.

    .venv/bin/python scripts/gen_docs.py          # write
    .venv/bin/python scripts/gen_docs.py --check  # exit 1 if they are out of date (the tests do this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chaoslab import faults
from chaoslab.experiment.schema import experiment_schema

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    return "" if value is None else f"`{json.dumps(value)}`"


def faults_md() -> str:
    lines = [
        "# Fault catalog",
        "",
        "Generated from the code by `scripts/gen_docs.py`; `chaoslab faults` prints the same.",
        "`chaoslab doctor` says which of these can run on this machine, and why not.",
        "",
        "Every fault's revert is idempotent and recorded in the fault ledger before injection",
        "(docs/runs.md). *Instant* faults act once and have nothing to revert.",
        "",
        "| fault | targets | reverted | what it does |",
        "|---|---|---|---|",
    ]
    registry = faults.all_faults()
    for name, cls in registry.items():
        targets = ", ".join(sorted(cls.target_kinds)) if cls.target_kinds is not None else "none (system-wide)"
        lines.append(f"| [`{name}`](#{name.replace('.', '')}) | {targets} | {'yes' if cls.reversible else 'instant'} | {cls.summary} |")
    for name, cls in registry.items():
        lines += ["", f"## {name}", "", cls.summary, ""]
        doc = (cls.__doc__ or "").strip()
        if doc and doc != cls.summary:
            lines += [doc, ""]
        fields = cls.Params.model_fields
        if fields:
            lines += ["| parameter | default | meaning |", "|---|---|---|"]
            for k, f in fields.items():
                lines.append(f"| `{f.alias or k}` | {_default(f)} | {(f.description or '').replace('|', '/')} |")
        else:
            lines.append("No parameters.")
    return "\n".join(lines) + "\n"


def schema_json() -> str:
    return json.dumps(experiment_schema(), indent=2) + "\n"


def main() -> int:
    outputs = {DOCS / "faults.md": faults_md(), DOCS / "experiment.schema.json": schema_json()}
    if "--check" in sys.argv:
        stale = [str(p) for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("out of date (run scripts/gen_docs.py): " + ", ".join(stale))
            return 1
        return 0
    for path, text in outputs.items():
        path.write_text(text)
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
