"""Load an experiment file into a validated ``Experiment``, or fail with one line per error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import faults
from ..errors import InputError
from ..registry import did_you_mean
from ..source import Document, InputErrors, load_document
from . import ctk
from .model import Experiment, Step
from .overlay import Overlay


@dataclass
class LoadedExperiment:
    experiment: Experiment
    path: Path
    document: Document

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def stack_file(self) -> str | None:
        if self.experiment.stack is None:
            return None
        return str((self.base_dir / self.experiment.stack).resolve())


def load_experiment(path: str | Path, variables: Mapping[str, str] | None = None,
                    overlay: Overlay | None = None) -> LoadedExperiment:
    if overlay is not None:
        variables = overlay.variables(variables)
    doc = load_experiment_document(path, variables)
    if overlay is not None:
        overlay.apply(doc)
    if not isinstance(doc.data, dict):
        raise doc.error((), "an experiment must be a mapping (title, method, ...)")
    _check_bound_units(doc)
    exp = doc.validate(Experiment)
    errors = _check_references(exp, doc) + _check_steps(exp, doc) + _check_probes(exp, doc)
    errors += _check_hypothesis(exp, doc) + _check_observe(exp, doc)
    if errors:
        raise InputErrors(sorted(errors, key=lambda e: (e.line or 0, e.column or 0)))
    return LoadedExperiment(experiment=exp, path=Path(path).resolve(), document=doc)


def load_experiment_document(path: str | Path, variables: Mapping[str, str] | None = None) -> Document:
    """The experiment's data with its marks; a Chaos Toolkit experiment comes back translated
    (its ``${key}`` mean its own configuration, so it is read without substitution first)."""
    raw = load_document(path, variables, substitute=False)
    if ctk.is_ctk(raw.data):
        return ctk.translate(raw, {**os.environ, **(variables or {})})
    return load_document(path, variables)


def _ref_error(doc: Document, loc: tuple[str | int, ...], name: str, known: Mapping[str, Any], what: str) -> InputError:
    hint = did_you_mean(name, known, cutoff=0.5)
    text = f"{what} {name!r} is not defined"
    if hint:
        text += f" ({hint})"
    else:
        text += f" (defined: {', '.join(known)})" if known else " (none defined)"
    return doc.error(loc, text)


def _check_references(exp: Experiment, doc: Document) -> list[InputError]:
    errors = []
    for i, step in enumerate(exp.method):
        if step.target is not None and step.target not in exp.targets:
            errors.append(_ref_error(doc, ("method", i, "target"), step.target, exp.targets, "target"))
    for i, sc in enumerate(exp.stop_conditions):
        if sc.probe not in exp.probes:
            errors.append(_ref_error(doc, ("stop_conditions", i, "probe"), sc.probe, exp.probes, "probe"))
    for name, probe in exp.probes.items():
        if probe.kind == "process" and probe.spec.target and probe.spec.target not in exp.targets:
            errors.append(
                _ref_error(doc, ("probes", name, "process", "target"), probe.spec.target, exp.targets, "target")
            )
    method_end = exp.baseline_max + exp.planned_end()  # max_duration counts from the baseline's start
    if exp.max_duration < method_end:
        what = "the baseline and the method" if exp.baseline is not None else "the method"
        errors.append(
            doc.error(
                ("max_duration",),
                f"max_duration {exp.max_duration:g}s is shorter than {what} ({method_end:g}s)",
            )
        )
    return errors


def _check_steps(exp: Experiment, doc: Document) -> list[InputError]:
    errors: list[InputError] = []
    for i, step in enumerate(exp.method):
        try:
            cls = faults.get(step.fault)
        except KeyError as exc:
            errors.append(doc.error(("method", i, "fault"), str(exc.args[0])))
            continue
        kinds = cls.target_kinds
        if kinds is None and step.target is not None:
            errors.append(doc.error(("method", i, "target"), f"{step.fault} takes no target"))
        elif kinds is not None:
            if step.target is None and not cls.target_optional:
                errors.append(doc.error(("method", i), f"{step.fault} needs a target ({' or '.join(sorted(kinds))})"))
            elif step.target in exp.targets and exp.targets[step.target].kind not in kinds:
                got = exp.targets[step.target].kind
                errors.append(
                    doc.error(
                        ("method", i, "target"),
                        f"{step.fault} cannot act on a {got} target (accepts: {', '.join(sorted(kinds))})",
                    )
                )
        if cls.requires_duration() and step.duration is None:
            errors.append(doc.error(("method", i), f"{step.fault} needs a duration (how long the fault stays)"))
        own = {f.alias or n for n, f in cls.Params.model_fields.items()}
        extras = step.extras
        for key in [k for k in extras if k not in own]:
            known = own | set(Step.model_fields)
            hint = did_you_mean(key, known)
            text = f"unknown field {key!r} for {step.fault}"
            text += f" ({hint})" if hint else f" (its parameters: {', '.join(sorted(own)) or 'none'})"
            errors.append(doc.error(("method", i, key), text, key=True))
            del extras[key]
        try:
            step._params = cls.Params.model_validate(extras)
        except ValidationError as exc:
            errors.extend(doc.errors_from(exc, cls.Params, ("method", i)))
    return errors


def _check_probes(exp: Experiment, doc: Document) -> list[InputError]:
    from .. import probes

    errors: list[InputError] = []
    for name, spec in exp.probes.items():
        model, exc = probes.validate_expect(spec.kind, spec.expect)
        if exc is not None:
            errors.extend(doc.errors_from(exc, model, ("probes", name, "expect")))
    return errors


def _check_hypothesis(exp: Experiment, doc: Document) -> list[InputError]:
    if not exp.hypothesis:
        return []
    from .names import validate_metric_name

    errors: list[InputError] = []
    for key in exp.hypothesis:
        try:
            validate_metric_name(key, list(exp.probes), has_load=exp.load is not None,
                                 has_verify=exp.verify is not None,
                                 invariants=list(exp.verify.invariants) if exp.verify else [])
        except ValueError as exc:
            errors.append(doc.error(("hypothesis", key), str(exc), key=True))
            continue
    return errors


def _check_bound_units(doc: Document) -> None:
    """A duration string bounds only a time metric; ``lost_writes: {max: '1s'}`` is a mistake.
    Checked on the raw data, before the model turns the string into seconds."""
    from .names import unit

    raw = doc.data.get("hypothesis")
    if not isinstance(raw, dict):
        return
    errors = []
    for key, bound in raw.items():
        kind = unit(str(key))
        for side in ("max", "min"):
            if isinstance(bound, dict) and isinstance(bound.get(side), str) and kind != "seconds":
                errors.append(doc.error(("hypothesis", key, side),
                                        f"{key} is a {kind.replace('_', ' ')}, not a time: write a number"))
    if errors:
        raise InputErrors(errors)


def _check_observe(exp: Experiment, doc: Document) -> list[InputError]:
    if not exp.observe:
        return []
    from ..observe.spec import ObserveSpec

    try:
        spec = ObserveSpec.model_validate(exp.observe)
    except ValidationError as exc:
        return doc.errors_from(exc, ObserveSpec, ("observe",))
    if spec.profile and spec.profile.target not in exp.targets:
        return [_ref_error(doc, ("observe", "profile", "target"), spec.profile.target, exp.targets, "target")]
    return []
