"""What every fault is: a small class with ``inject()``, ``revert()`` and ``describe()``.

The runner drives a fault like this (and the ledger makes it crash-safe):

    fault = FaultClass(params, target, run_id=...)
    FaultClass.check()                 # CapabilityError: this machine cannot run it (doctor's reason)
    ledger.record(fault)               # fsynced *before* anything changes
    fault.inject()                     # may fill fault.state with what revert needs
    ledger.update(fault)               # state now on disk too (a fault may call
                                       # self.checkpoint() mid-inject to save it earlier)
    ... every ``fault.interval`` seconds: fault.tick()
    fault.revert()                     # idempotent; tolerates the target having died
    ledger.remove(fault)

After a SIGKILL of the runner, ``chaoslab recover`` rebuilds the fault with
``Fault.from_record(entry)`` in another process and calls ``revert()``: so everything revert
needs must be in ``params``, ``target`` or ``state``, never only in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from ..registry import type_arguments
from ..targets import ResolvedTarget, kinds_able
from ..targets.base import PROCESSES


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FaultParams(BaseModel):
    """Base for fault parameter models: unknown keys are errors.

    Validators are built on a model's first use, not at import: every family is imported on the
    first look-up, and building all their models cost ~60 ms of a run's start-up (bench/watch_cost.py)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)


P = TypeVar("P", bound=BaseModel)
"""A fault's parameter model: ``class Kill(Fault[KillParams])`` makes ``self.params`` a ``KillParams``."""


class AcceptedKinds:
    """``Fault.target_kinds``: the kinds whose targets offer every ability the fault ``needs``
    (``None``: the fault takes no target). Derived, so a new platform's kinds are accepted by
    every fault its abilities serve, and no fault lists kinds."""

    def __get__(self, obj: object, owner: type[Fault[Any]]) -> frozenset[str] | None:
        return None if owner.needs is None else kinds_able(owner.needs)


class Fault(ABC, Generic[P]):
    name: ClassVar[str]
    """Registered name, e.g. ``process.kill``."""
    summary: ClassVar[str] = ""
    """One line for the fault catalog and ``chaoslab faults``."""
    Params: ClassVar[type[BaseModel]] = NoParams
    """The model ``P`` itself, taken from the class statement (``Fault[KillParams]``) when the
    class is defined: validates the step's keys. (A ClassVar cannot name a type variable.)"""
    needs: ClassVar[frozenset[str] | None] = frozenset({PROCESSES})
    """Abilities the target must offer (chaoslab/targets/base.py); ``None`` means no target."""
    target_kinds = AcceptedKinds()
    """Kinds of target accepted (see ``TargetSpec.kind``), from ``needs``; ``None`` means no target."""
    target_optional: ClassVar[bool] = False
    """True when the fault also runs without a target (e.g. ``cpu.stress`` system-wide)."""
    reversible: ClassVar[bool] = True
    """False for instantaneous faults (kill): nothing to revert, no ledger entry."""
    needs_duration: ClassVar[bool | None] = None
    """Whether a step must give ``duration``; defaults to ``reversible``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        args = type_arguments(cls)
        if args:
            cls.Params = args[0]

    @classmethod
    def requires_duration(cls) -> bool:
        return cls.reversible if cls.needs_duration is None else cls.needs_duration

    def __init__(
        self,
        params: P,
        target: ResolvedTarget | None,
        *,
        run_id: str = "",
        state: dict[str, Any] | None = None,
    ) -> None:
        self.params: P = params
        self.target = target
        self.run_id = run_id
        self.state: dict[str, Any] = state if state is not None else {}
        self.planned_duration: float | None = None
        """The step's duration when the runner knows it before injecting; an engine that can end
        a fault by itself (Chaos Mesh's ``spec.duration``) gets it as a safety net."""
        self._checkpoint: Callable[[Fault[Any]], None] | None = None

    def checkpoint(self) -> None:
        """Persist ``state`` to the ledger now (call it after recording what revert will need and
        *before* changing the system, e.g. before moving a process into a fault cgroup)."""
        if self._checkpoint is not None:
            self._checkpoint(self)

    # -- capability -----------------------------------------------------------------------
    @classmethod
    def check(cls) -> None:
        """Raise ``CapabilityError`` when this machine cannot run the fault. Default: it can."""

    # -- lifecycle ------------------------------------------------------------------------
    @abstractmethod
    def inject(self) -> None: ...

    def revert(self) -> None:
        """Undo ``inject``. Must be idempotent and must not fail when the target is gone."""

    @property
    def interval(self) -> float | None:
        """When set, the runner calls ``tick()`` this often while the fault is active."""
        return None

    def tick(self) -> bool | None:
        """Periodic action while active (e.g. crashloop kills again). Returning False means
        nothing happened this time (no journal record)."""
        return None

    def describe(self) -> str:
        target = self.target.describe() if self.target else "-"
        params = self.params.model_dump(mode="json", exclude_defaults=True)
        extra = " ".join(f"{k}={v}" for k, v in params.items())
        return f"{self.name} on {target}" + (f" ({extra})" if extra else "")

    # -- persistence ----------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        return {
            "fault": self.name,
            "run_id": self.run_id,
            "params": self.params.model_dump(mode="json"),
            "target": self.target.to_dict() if self.target else None,
            "state": self.state,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Fault[Any]:
        target = ResolvedTarget.from_dict(record["target"]) if record.get("target") else None
        # ``Params`` is ``P`` by construction (``__init_subclass__``); typed Any because a
        # ClassVar cannot say so.
        params: Any = cls.Params.model_validate(record.get("params") or {})
        return cls(params, target, run_id=record.get("run_id", ""), state=dict(record.get("state") or {}))
