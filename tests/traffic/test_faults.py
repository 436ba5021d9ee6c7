"""Fault rules: on given calls, every Nth call, or at a seeded rate."""

from __future__ import annotations

import pytest

from opencleanrooms.traffic.faults import FaultInjector, parse_rule


def outcomes(injector, operation, n):
    return [injector.fault_for(operation) for _ in range(n)]


def test_calls_and_every():
    injector = FaultInjector([parse_rule("ListMemberships=InternalServerException@calls:1,3"),
                              parse_rule("GetMembership=ThrottlingException@every:2")])
    assert outcomes(injector, "ListMemberships", 4) == ["InternalServerException", None,
                                                        "InternalServerException", None]
    assert outcomes(injector, "GetMembership", 4) == [None, "ThrottlingException", None, "ThrottlingException"]
    assert outcomes(injector, "ListCollaborations", 3) == [None, None, None]


def test_rates_are_reproducible_for_a_seed():
    rule = {"operation": "*", "error": "InternalServerException", "rate": 0.3}
    first = outcomes(FaultInjector([rule], seed=7), "X", 200)
    assert first == outcomes(FaultInjector([rule], seed=7), "X", 200)
    assert first != outcomes(FaultInjector([rule], seed=8), "X", 200)
    assert 30 <= first.count("InternalServerException") <= 90


def test_empty_injector_is_falsy():
    assert not FaultInjector([])
    assert FaultInjector([parse_rule("X=crash@every:1")])


@pytest.mark.parametrize("bad", [
    {"operation": "X", "error": "Boom", "every": 1},
    {"operation": "", "error": "crash", "every": 1},
    {"operation": "X", "error": "crash", "rate": 1.5},
    {"operation": "X", "error": "crash", "rate": 0.1, "colour": "red"},
    {"operation": "X", "error": "crash", "every": 0},
    {"operation": "X", "error": "crash", "calls": [0]},
    {"operation": "X", "error": "crash"},
])
def test_bad_rules_are_refused(bad):
    with pytest.raises(ValueError):
        FaultInjector([bad])


@pytest.mark.parametrize("bad", ["X=crash", "X=crash@calls:a", "X=crash@sometimes:1", "X=crash@every:"])
def test_bad_specs_are_refused(bad):
    with pytest.raises(ValueError):
        parse_rule(bad)
