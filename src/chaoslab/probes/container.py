"""Container probe: running, healthy by Docker's own HEALTHCHECK, and how often Docker restarted
it. The value of a sample is the restart count (summed over the target's containers)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import register
from .base import Probe, ProbeModel, Sample, Stopwatch


class ContainerProbeSpec(ProbeModel):
    target: str | None = Field(None, description="A container/compose target name; every container of it is checked.")
    name: str | None = Field(None, description="A container name or id, looked up at each sample.")

    @model_validator(mode="after")
    def _one(self) -> ContainerProbeSpec:
        if (self.target is None) == (self.name is None):
            raise ValueError("a container probe needs exactly one of target, name")
        return self


class ContainerExpect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    healthy: bool = Field(True, description="A container with a HEALTHCHECK must report healthy (not starting/unhealthy).")
    max_restarts: int | None = Field(None, ge=0, description="Failing once Docker restarted it more often than this.")


@register
class ContainerProbe(Probe[ContainerProbeSpec, ContainerExpect]):
    kind = "container"

    def _refs(self) -> list[str] | str:
        if self.spec.name is not None:
            return [str(self.spec.name)]
        target = self.context.targets.get(self.spec.target or "")  # the spec has a target: it has no name
        if target is None:
            return f"target {self.spec.target!r} is not resolved"
        containers = target.extra.get("containers") if hasattr(target, "extra") else None
        if not containers:
            return f"target {self.spec.target!r} is not a container target"
        # By name: a container Compose recreated under the same name is still the service.
        return [str(c["name"]) for c in containers]

    def _check(self, refs: list[str]) -> Sample:
        from ..platforms import docker

        watch = Stopwatch()
        restarts = 0
        for ref in refs:
            c = docker.get(ref)
            if c is None:
                return Sample(False, None, watch.elapsed(), f"no container {ref!r}")
            state: dict[str, Any] = c.attrs.get("State") or {}
            restarts += int(c.attrs.get("RestartCount") or 0)
            status = state.get("Status")
            if status != "running":
                return Sample(False, restarts, watch.elapsed(), f"{ref} is {status}")
            health = (state.get("Health") or {}).get("Status")
            if self.expect.healthy and health not in (None, "healthy"):
                return Sample(False, restarts, watch.elapsed(), f"{ref} is {health}")
        if self.expect.max_restarts is not None and restarts > self.expect.max_restarts:
            return Sample(False, restarts, watch.elapsed(), f"restarted {restarts} times")
        return Sample(True, restarts, watch.elapsed())

    async def sample(self) -> Sample:
        refs = self._refs()
        if isinstance(refs, str):
            return Sample(False, None, 0.0, refs)
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._check, refs), self.timeout)
        except TimeoutError:
            return Sample(False, None, self.timeout, f"Docker did not answer within {self.timeout:g}s")
        except Exception as exc:
            return Sample(False, None, None, f"{type(exc).__name__}: {exc}")
