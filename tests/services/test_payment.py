"""Payment assignment and acceptance rules, as pure functions."""

from __future__ import annotations

import pytest

from opencleanrooms.errors import ServiceError
from opencleanrooms.services.payment import Participant, assign, check_acceptance

pytestmark = pytest.mark.backend_independent

YES, NO = {"isResponsible": True}, {"isResponsible": False}


def p(account, abilities=(), payment=None):
    return Participant(account, list(abilities), payment, f"members.{account}")


def test_default_payers_follow_abilities():
    result = assign([p("a", ["CAN_QUERY", "CAN_RUN_JOB"]), p("b", ["CAN_RECEIVE_RESULTS"])])
    assert result == {"a": {"queryCompute": YES, "jobCompute": YES}, "b": {"queryCompute": NO, "jobCompute": NO}}


def test_no_job_compute_without_a_job_runner_or_a_choice():
    assert assign([p("a", ["CAN_QUERY"]), p("b")]) == {"a": {"queryCompute": YES}, "b": {"queryCompute": NO}}


def test_named_payer_takes_over_and_ml_types_appear_when_specified():
    result = assign([p("a", ["CAN_QUERY"], {"queryCompute": NO}),
                     p("b", [], {"queryCompute": YES, "machineLearning": {"modelInference": YES}})])
    assert result["b"] == {"queryCompute": YES, "machineLearning": {"modelInference": YES}}
    assert result["a"] == {"queryCompute": NO, "machineLearning": {"modelInference": NO}}


def test_ml_defaults_to_the_querying_member_once_anyone_mentions_it():
    result = assign([p("a", ["CAN_QUERY"]), p("b", [], {"queryCompute": NO, "machineLearning": {"modelTraining": NO}})])
    assert result["a"]["machineLearning"] == {"modelTraining": YES}


@pytest.mark.parametrize("participants", [
    [p("a", ["CAN_QUERY"]), p("b", ["CAN_QUERY"])],
    [p("a", [], {"queryCompute": YES}), p("b", [], {"queryCompute": YES})],
    [p("a", ["CAN_QUERY"], {"queryCompute": NO}), p("b")],
    [p("a", ["CAN_QUERY", "CAN_RUN_JOB"], {"queryCompute": YES, "jobCompute": NO}), p("b")],
    [p("a", ["CAN_QUERY"]), p("b", [], {"queryCompute": NO, "machineLearning": {"syntheticDataGeneration": YES}}),
     p("c", [], {"queryCompute": NO, "machineLearning": {"syntheticDataGeneration": YES}})],
])
def test_conflicting_rules_are_validation_errors(participants):
    with pytest.raises(ServiceError) as info:
        assign(participants)
    assert (info.value.code, info.value.fields["reason"]) == ("ValidationException", "INVALID_CONFIGURATION")


def test_acceptance():
    effective = {"queryCompute": YES, "machineLearning": {"modelTraining": NO}}
    check_acceptance(effective, {"queryCompute": YES}, [], required=True)
    check_acceptance(effective, None, ["CAN_QUERY"], required=True)
    check_acceptance({"queryCompute": NO}, None, [], required=True)
    for given, abilities in ((None, []), ({"queryCompute": NO}, []),
                             ({"queryCompute": YES, "machineLearning": {"modelTraining": YES}}, []),
                             ({"queryCompute": YES, "jobCompute": YES}, ["CAN_QUERY"])):
        with pytest.raises(ServiceError):
            check_acceptance(effective, given, abilities, required=True)
    check_acceptance(effective, None, [], required=False)
