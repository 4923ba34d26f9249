"""``TargetSpec``: one entry of an experiment's ``targets:``, made of every platform's keys."""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator, model_validator

from .base import KINDS
from .docker import DOCKER_KINDS, DockerTargets
from .kubernetes import KubernetesTargets
from .local import LocalTargets
from .modes import parse_mode


# A platform's keys come in with its spec module's model; the kinds among them are those
# registered (targets/base.py KINDS), in the order the bases give them.
class TargetSpec(KubernetesTargets, DockerTargets, LocalTargets):
    """One entry of ``targets:``. Exactly one of the kind keys is given."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    mode: str = Field(
        "one",
        description="Blast radius for process and container selectors: one | all | count:N | percent:P.",
    )

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        parse_mode(v)
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetSpec:
        kinds = kind_keys()
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            what = ", ".join(given) if given else "none"
            raise ValueError(f"a target needs exactly one of {', '.join(kinds)} (got {what})")
        if self.processes != "main" and given[0] not in DOCKER_KINDS:
            raise ValueError("processes: all is for container and compose targets")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in kind_keys() if getattr(self, k) is not None)


def kind_keys() -> tuple[str, ...]:
    """The registered kinds, in the order of ``TargetSpec``'s fields."""
    return tuple(k for k in TargetSpec.model_fields if k in KINDS)
