"""load.http.poison: which operations are malformed, and how, as sent on the wire."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from chaoslab.experiment.poison import POISON_KINDS, PoisonSpec
from chaoslab.experiment.workload import HttpLoad
from chaoslab.load.poison import UNKNOWN_ENUM, Poisoner

BODY = {"id": "r-1", "source": "s", "level": "INFO", "message": "m", "amount": "12.5000"}


def test_exactly_the_share_is_poisoned_with_kinds_in_turn() -> None:
    p = Poisoner(PoisonSpec(share=0.1))
    kinds = [p.kind(k) for k in range(6000)]
    bad = [k for k in kinds if k is not None]
    assert len(bad) == 600
    assert {k: bad.count(k) for k in POISON_KINDS} == dict.fromkeys(POISON_KINDS, 100)
    assert [p.kind(k) for k in range(6000)] == kinds  # a pure function of the sequence number
    assert Poisoner(PoisonSpec(share=1, kinds=["oversize"])).kind(7) == "oversize"


def test_each_kind_makes_its_defect_and_only_it() -> None:
    p = Poisoner(PoisonSpec(share=1, oversize=4096))
    missing = json.loads(p.encode("missing_field", BODY))
    assert "source" not in missing and {k: v for k, v in BODY.items() if k != "source"} == missing
    assert json.loads(p.encode("wrong_type", BODY))["amount"] == ["12.5000"]
    assert json.loads(p.encode("bad_decimal", BODY))["amount"] == "12." + "1" * 9
    assert json.loads(p.encode("unknown_enum", BODY))["level"] == UNKNOWN_ENUM
    with pytest.raises(ValueError):
        json.loads(p.encode("truncated_json", BODY))
    big = p.encode("oversize", BODY)
    assert len(big) >= 4096 and json.loads(big)["id"] == "r-1"
    assert BODY["source"] == "s"  # the template is never modified in place


def test_bad_poison_specs_are_input_errors() -> None:
    http = {"url": "http://127.0.0.1:1/x", "method": "POST", "body": BODY}
    for bad in (
        {"share": 0},
        {"share": 1.5},
        {"share": 0.1, "kinds": []},
        {"share": 0.1, "kinds": ["nope"]},
        {"share": 0.1, "kinds": ["oversize", "oversize"]},
        {"share": 0.1, "oversize": "1TB"},
        {"share": 0.1, "colour": "red"},
    ):
        with pytest.raises(ValidationError):
            HttpLoad.model_validate({**http, "poison": bad})
    with pytest.raises(ValidationError, match="JSON object body"):
        HttpLoad.model_validate({**http, "body": "text", "poison": {"share": 0.1}})
    assert (
        HttpLoad.model_validate({**http, "poison": {"share": "0.25", "oversize": "2MB"}}).poison
        is not None
    )
