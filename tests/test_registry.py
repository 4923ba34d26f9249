"""One registry for everything with a name: its did-you-mean line, the models a fault, a probe
and a toxic take from their class statement, and the families found by listing their package."""

from __future__ import annotations

from typing import Generic, TypeVar

import pytest
from pydantic import BaseModel

from chaoslab import faults, probes
from chaoslab.experiment.model import ProbeSpec
from chaoslab.faults.base import Fault, FaultParams, NoParams
from chaoslab.proxy import toxics
from chaoslab.proxy.toxics.latency import Latency, LatencyAttributes
from chaoslab.registry import Registry, did_you_mean, type_arguments, unknown_message


def test_an_unknown_name_gets_one_line_with_the_closest_name_or_the_known_ones() -> None:
    assert did_you_mean("process.kil", ["process.kill", "cpu.stress"]) == "did you mean 'process.kill'?"
    assert did_you_mean("zzz", ["process.kill"]) is None
    assert unknown_message("fault", "process.kil", ["process.kill"]) == (
        "unknown fault 'process.kil' (did you mean 'process.kill'?)"
    )
    assert unknown_message("report format", "pdf", ["md", "html"]) == "unknown report format 'pdf' (known: html, md)"
    reg: Registry[int] = Registry("thing")
    reg.add("one", 1)
    with pytest.raises(KeyError) as info:
        reg.get("onee")
    assert info.value.args[0] == "unknown thing 'onee' (did you mean 'one'?)"


def test_a_registry_keeps_the_order_of_registration_apart_from_its_sorted_names() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("b", 2)
    reg.lazy("c", "math:pi", "a number")
    reg.add("a", 1)
    assert reg.names() == ["a", "b", "c"]
    assert reg.registered() == ["b", "c", "a"]
    assert reg.summary("c") == "a number" and reg.summary("a") == ""


class _ModelA(FaultParams):
    a: int = 1


class _ModelB(FaultParams):
    b: int = 2


P = TypeVar("P", bound=BaseModel)


def test_a_fault_takes_its_parameters_from_its_class_statement() -> None:
    class Concrete(Fault[_ModelA]):
        name = "test.concrete"

        def inject(self) -> None:
            pass

    class Intermediate(Fault[P]):
        pass

    class Leaf(Intermediate[_ModelB]):
        name = "test.leaf"

        def inject(self) -> None:
            pass

    class Inherits(Concrete):  # names no model: keeps its base's
        name = "test.inherits"

    assert Concrete.Params is _ModelA
    assert Intermediate.Params is NoParams
    assert Leaf.Params is _ModelB
    assert Inherits.Params is _ModelA
    assert type_arguments(Inherits) == ()
    rebuilt = Leaf.from_record({"fault": "test.leaf", "params": {"b": 7}})
    assert isinstance(rebuilt.params, _ModelB) and rebuilt.params.b == 7


def test_type_arguments_ignores_type_variables_and_plain_generics() -> None:
    T = TypeVar("T")

    class Box(Generic[T]):
        pass

    class IntBox(Box[int]):
        pass

    assert type_arguments(Box) == ()
    assert type_arguments(IntBox) == (int,)


def test_every_fault_family_registers_faults_and_every_helper_is_private() -> None:
    """Families are found by listing faults/: a module there that registers nothing is a helper
    and must start with ``_`` (``base`` and ``settings`` are the two shared ones)."""
    registering = {cls.__module__ for cls in faults.all_faults().values()}
    shared = {"chaoslab.faults.base", "chaoslab.faults.settings"}
    assert set(faults.families()) - shared == registering


def test_the_experiment_model_has_one_key_per_probe_kind_typed_by_the_kind() -> None:
    assert set(probes.KINDS.names()) <= set(ProbeSpec.model_fields)
    for kind in probes.KINDS.names():
        assert probes.probe_class(kind).kind == kind
    spec = ProbeSpec.model_validate({"tcp": {"port": 5432}, "expect": {}})
    probe = probes.build("db", spec, probes.ProbeContext({}))
    assert type(probe.spec) is probes.probe_class("tcp").Spec and probe.spec.port == 5432
    http = ProbeSpec.model_validate({"http": {"url": "http://127.0.0.1:1/"}, "expect": {"status": 204}})
    assert probes.build("h", http, probes.ProbeContext({})).expect.status == 204


def test_a_toxic_takes_its_attributes_from_its_class_statement() -> None:
    assert Latency.Attributes is LatencyAttributes
    assert toxics.get("latency") is Latency
