"""Docker targets: a container (by name, id or label) and the containers of a Compose service.
Their spec fields and kinds; the ``docker`` platform (platforms/docker.py) resolves them
through the Engine API and supplies their abilities."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .base import (
    ADDRESS,
    CGROUPS,
    CLOCK,
    CONTAINERS,
    FILESYSTEM,
    FOLLOWS_RESTARTS,
    NETNS,
    PROCESSES,
    register_kind,
    register_platform,
)

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


class DockerTargets(BaseModel):
    """The keys of Docker targets, and the option they take."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    container: str | ContainerSelector | None = Field(
        None, description="A Docker container name or id, or {label: \"k=v\"}: every running container with it.")
    compose: ComposeSelector | None = Field(None, description="The containers of a Compose service {project, service}.")

    processes: Literal["main", "all"] = Field(
        "main", description="Container targets: process faults act on the main process, or on all of them.")


DOCKER_KINDS = ("container", "compose")
"""The kinds ``processes: all`` applies to."""

for _kind in DOCKER_KINDS:
    register_kind(_kind, "docker", {PROCESSES, CGROUPS, CLOCK, ADDRESS, NETNS, FILESYSTEM, CONTAINERS,
                                    FOLLOWS_RESTARTS})
register_platform("docker", "chaoslab.platforms.docker:PLATFORM")
