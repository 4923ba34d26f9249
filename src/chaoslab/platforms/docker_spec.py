"""The experiment-file shapes of Docker targets. A leaf (pydantic only), so ``targets`` can use
them without importing the Docker platform (which imports ``targets``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class ContainerSelector(BaseModel):
    """``{container: {label: "k=v"}}``: every running container with that label."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(description="A label `key=value` (or just `key`) the containers carry.")

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        if not v.split("=", 1)[0].strip():
            raise ValueError("a label needs a key (key=value or key)")
        return v


class ComposeSelector(BaseModel):
    """``{compose: {project: P, service: S}}``: the running containers of a Compose service."""

    model_config = ConfigDict(extra="forbid")
    project: str = Field(description="Compose project name (`docker-compose -p`, default: the directory's name).")
    service: str | None = Field(None, description="Service name; every service of the project when omitted.")


CONTAINER_KINDS = frozenset({"container", "compose"})
"""Target kinds that resolve to Docker containers."""
