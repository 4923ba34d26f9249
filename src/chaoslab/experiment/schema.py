"""JSON Schema of the experiment format, with each fault's parameters spelled out per step."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, create_model

from .. import faults
from .model import Experiment, Step


def experiment_schema() -> dict[str, Any]:
    schema = Experiment.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "chaoslab experiment"
    defs = schema.setdefault("$defs", {})
    variants = []
    for name, cls in faults.all_faults().items():
        fields: dict[str, Any] = {
            k: (f.annotation, f) for k, f in Step.model_fields.items() if k != "fault"
        }
        fields["fault"] = (Literal[name], ...)
        for k, f in cls.Params.model_fields.items():
            fields[f.alias or k] = (f.annotation, f)
        model = create_model(
            "Step_" + name.replace(".", "_"), __config__=ConfigDict(extra="forbid"), **fields
        )
        sub = model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
        for k, v in sub.pop("$defs", {}).items():
            defs.setdefault(k, v)
        sub["description"] = cls.summary
        defs[model.__name__] = sub
        variants.append({"$ref": f"#/$defs/{model.__name__}"})
    step_schema = {"oneOf": variants, "description": "A fault step: common keys plus the fault's own."}
    defs["Step"] = step_schema
    return schema
