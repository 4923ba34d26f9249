"""Container faults through the Docker Engine API: kill, stop, restart, pause, remove.

Every action looks the container up by the full id recorded when the target was resolved, never
by name: a container recreated under the same name since then (a new id) is never touched, by
the run or by ``chaoslab recover``. The ids are in ``state`` before anything changes.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

from pydantic import Field, field_validator

from ..errors import FaultError
from ..system import capabilities
from ..targets.base import CONTAINERS
from ..units import Duration
from . import register
from .base import Fault, FaultParams, NoParams, P
from .process import SIGNAL_SCHEMA, parse_signal


def _docker() -> Any:
    from ..platforms import docker

    return docker


class ContainerFault(Fault[P]):
    needs = frozenset({CONTAINERS})

    @classmethod
    def check(cls) -> None:
        capabilities.require("docker")

    def _targets(self) -> list[dict[str, Any]]:
        """The resolved containers, recorded in ``state`` (id and name) before acting."""
        infos = _docker().containers_of(self.target)
        if not infos:
            why = self.target.platform.no_container(self.target) if self.target else "no target to act on"
            raise FaultError(f"{self.name}: {why}")
        self.state["containers"] = [{"id": c.id, "name": c.name, "started_at": c.started_at} for c in infos]
        return list(self.state["containers"])

    def _live(self, entry: dict[str, Any]) -> Any | None:
        return _docker().same(entry)

    def _each(self, action: str, fn: Any) -> None:
        done, gone, failed = [], [], []
        for entry in self._targets():
            c = self._live(entry)
            if c is None:
                gone.append(entry["name"])
                continue
            try:
                fn(c)
                done.append(entry["name"])
            except Exception as exc:
                failed.append(f"{entry['name']}: {_docker()._short(exc)}")
        self.state[action] = done
        if failed or not done:
            why = "; ".join(failed) or f"{', '.join(gone)} no longer exist(s)"
            raise FaultError(f"{self.name}: {why}")


class KillParams(FaultParams):
    signal: str | int = Field("SIGKILL", description="Signal sent to the main process (name or number).",
                              json_schema_extra=SIGNAL_SCHEMA)
    via: Literal["process", "docker"] = Field(
        "process",
        description="process: signal the main process from the host, a crash as Docker sees it (its restart "
        "policy applies); docker: Docker's kill API, which Docker counts as a manual stop (no restart).")

    @field_validator("signal")
    @classmethod
    def _known(cls, v: str | int) -> str | int:
        parse_signal(v)
        return v


@register
class ContainerKill(ContainerFault[KillParams]):
    name = "container.kill"
    summary = "Send a signal (SIGKILL by default) to the containers' main process via Docker; its restart policy applies."
    reversible = False

    def inject(self) -> None:
        sig = parse_signal(self.params.signal)
        if self.params.via == "docker":
            self._each("killed", lambda c: c.kill(signal=sig.name))
            return
        infos = {c.id: c for c in _docker().containers_of(self.target)}

        def crash(c: Any) -> None:
            ref = infos[c.id].main_process()
            # the same container (id) and the same main process (pid + start time), or nothing
            if ref is None or ref.process() is None:
                raise FaultError(f"main process {infos[c.id].pid} of {c.name} is gone (restarted since resolved?)")
            os.kill(ref.pid, sig)

        self._each("killed", crash)


class StopParams(FaultParams):
    timeout: Duration = Field(10.0, ge=0, description="Grace between SIGTERM and SIGKILL (Docker's stop timeout).")


@register
class ContainerStop(ContainerFault[StopParams]):
    """A manual stop: Docker's restart policy does not bring the container back, chaoslab starts it
    again on revert (the same container, by id)."""

    name = "container.stop"
    summary = "Stop the containers (SIGTERM, SIGKILL after `timeout`); start them again on revert."

    STOP_GRACE = 5.0
    """Beyond the timeout, how long Docker may take to see the SIGKILLed process exit."""

    def inject(self) -> None:
        timeout = max(0, round(self.params.timeout))
        self._targets()
        # Docker finishes a stop it has begun even when the caller dies: until this time a revert
        # (by recover, after a SIGKILL of the runner) may find a container still stopping, which
        # a start does not bring back (it is still running) and the stop then ends for good.
        self.state["stop_until"] = time.time() + timeout + self.STOP_GRACE
        self.checkpoint()
        self._each("stopped", lambda c: c.stop(timeout=timeout))

    def revert(self) -> None:
        done = set(self.state.get("stopped") or [])  # stops that returned: nothing in flight
        until = float(self.state.get("stop_until") or 0.0)
        for entry in self.state.get("containers") or []:
            c = self._live(entry)
            if c is None:
                continue
            c.reload()
            # Docker says "running" until the stop ends: wait for it to end (or for the stop's
            # window to pass, when the stop never reached Docker), then start what it stopped.
            while entry["name"] not in done and c.status == "running" and time.time() < until:
                time.sleep(0.1)
                if self._live(entry) is None:
                    break
                c.reload()
            if c.status in ("exited", "created"):
                c.start()


class RestartParams(FaultParams):
    timeout: Duration = Field(10.0, ge=0, description="Grace between SIGTERM and SIGKILL before the start.")


@register
class ContainerRestart(ContainerFault[RestartParams]):
    name = "container.restart"
    summary = "Restart the containers (docker restart, with the stop timeout)."
    reversible = False

    def inject(self) -> None:
        timeout = max(0, round(self.params.timeout))
        self._each("restarted", lambda c: c.restart(timeout=timeout))


@register
class ContainerPause(ContainerFault[NoParams]):
    name = "container.pause"
    summary = "Freeze every process of the containers (Docker's pause, the cgroup freezer); unpause on revert."

    def inject(self) -> None:
        self._targets()
        self.checkpoint()
        self._each("paused", lambda c: c.pause())

    def revert(self) -> None:
        for entry in self.state.get("containers") or []:
            c = self._live(entry)
            if c is None:
                continue
            c.reload()
            if c.status == "paused":
                c.unpause()


class RemoveParams(FaultParams):
    allow_remove: bool = Field(False, validate_default=True, description="Must be true: a removed container cannot be brought back.")
    volumes: bool = Field(False, description="Also remove its anonymous volumes.")

    @field_validator("allow_remove")
    @classmethod
    def _explicit(cls, v: bool) -> bool:
        if not v:
            raise ValueError("container.remove deletes the container for good; set allow_remove: true to mean it")
        return v


@register
class ContainerRemove(ContainerFault[RemoveParams]):
    name = "container.remove"
    summary = "Remove the containers (forced); only with allow_remove: true. Compose or an orchestrator may recreate them."
    reversible = False

    def inject(self) -> None:
        volumes = self.params.volumes
        self._each("removed", lambda c: c.remove(force=True, v=volumes))
