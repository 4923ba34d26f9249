"""A targets overlay: the same experiment files against another platform, without copies.

    # examples/exchange/compose-targets.yaml
    stack: null                       # do not bring up the experiments' local stack
    vars: {EXCHANGE_API_PORT: "8080"} # defaults for the experiments' ${...}
    targets:                          # replaces the experiments' targets of these names
      db: {compose: {project: exchange, service: postgres}}

``chaoslab run|validate|suite run|suite validate --targets FILE``. A target is replaced only in
an experiment that defines one of that name (the catalog names its targets the same way in every
file: db, cache, api, proxy, link); the experiment's faults, probes, load and hypothesis stay as
written, and `validate` still checks each fault against the kind of its new target.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..source import Document, InputErrors, load_document
from ..targets import TargetSpec


class OverlaySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stack: str | None = Field(None, description="Stack file instead of the experiments' (relative to the "
                                                "overlay); null: none, the system is already up.")
    vars: dict[str, str] = Field(default_factory=dict, description="Defaults for the experiments' variables.")
    targets: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Targets by name.")


@dataclass
class Overlay:
    path: Path
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    # None: keep each experiment's own `stack:`; ("",): none; (path,): that file.
    stack: tuple[str] | None = None

    def variables(self, given: Mapping[str, str] | None) -> dict[str, str]:
        """The overlay's vars under the caller's: --var, suite vars and the environment win
        (variables passed in are substituted before the environment)."""
        defaults = {k: v for k, v in self.vars.items() if k not in os.environ}
        return {**defaults, **(given or {})}

    def apply(self, doc: Document) -> None:
        data = doc.data
        if not isinstance(data, dict):
            return
        targets = data.get("targets")
        if isinstance(targets, dict):
            for name in list(targets):
                if name in self.targets:
                    targets[name] = dict(self.targets[name])
        if self.stack is not None:
            data["stack"] = self.stack[0] or None


def load_overlay(path: str | Path, variables: Mapping[str, str] | None = None) -> Overlay:
    doc = load_document(path, variables)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a targets overlay is a mapping (stack, vars, targets)")
    spec = doc.validate(OverlaySpec)
    errors = []
    for name, raw in spec.targets.items():
        try:
            doc.validate(TargetSpec, data=raw, prefix=("targets", name))
        except InputErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise InputErrors(errors)
    here = Path(path).resolve().parent
    stack: tuple[str] | None = None
    if "stack" in spec.model_fields_set:
        stack = (str((here / spec.stack).resolve()),) if spec.stack else ("",)
    return Overlay(Path(path).resolve(), spec.targets, spec.vars, stack)
