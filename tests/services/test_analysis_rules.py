"""The semantic checks of configured table analysis rules (services/analysis_rules.py), without a server."""

from __future__ import annotations

import pytest

from opencleanrooms.errors import ServiceError
from opencleanrooms.services import analysis_rules as rules

pytestmark = pytest.mark.backend_independent

ALLOWED = ["user_id", "segment", "age_band", "lifetime_value", "email_hash"]
TEMPLATE = ("arn:aws:cleanrooms:us-east-1:111122223333:membership/41327cc4-bbf0-43f1-b70c-a160dddceb08/"
            "analysistemplate/1ff1bf9d-781c-418d-a6ac-2b80c09d6292")


def aggregation(**changes) -> dict:
    body = {"aggregateColumns": [{"columnNames": ["lifetime_value"], "function": "SUM"}],
            "joinColumns": ["user_id"], "dimensionColumns": ["segment"], "scalarFunctions": [],
            "outputConstraints": [{"columnName": "user_id", "minimum": 2, "type": "COUNT_DISTINCT"}]}
    body.update(changes)
    return {"v1": {"aggregation": {k: v for k, v in body.items() if v is not None}}}


def listing(**changes) -> dict:
    body = {"joinColumns": ["user_id"], "listColumns": ["segment"]}
    body.update(changes)
    return {"v1": {"list": {k: v for k, v in body.items() if v is not None}}}


def custom(**changes) -> dict:
    body = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": ["444455556666"]}
    body.update(changes)
    return {"v1": {"custom": {k: v for k, v in body.items() if v is not None}}}


def rejected(rule_type, policy, allowed=ALLOWED, kind="glue") -> ServiceError:
    with pytest.raises(ServiceError) as info:
        rules.check_rule(rule_type, policy, allowed, kind)
    assert info.value.code == "ValidationException"
    return info.value


def field(error: ServiceError) -> str:
    [entry] = error.fields["fieldList"]
    return entry["name"]


@pytest.mark.parametrize("rule_type, policy", [
    ("AGGREGATION", aggregation()),
    ("AGGREGATION", aggregation(joinColumns=[], dimensionColumns=[], additionalAnalyses="NOT_ALLOWED")),
    ("AGGREGATION", aggregation(aggregateColumns=[{"columnNames": ["user_id"], "function": "COUNT_DISTINCT"},
                                                  {"columnNames": ["user_id"], "function": "COUNT"}],
                                joinRequired="QUERY_RUNNER", allowedJoinOperators=["AND", "OR"])),
    ("LIST", listing()),
    ("LIST", listing(joinColumns=["user_id", "email_hash"], listColumns=["user_id", "segment"],
                     additionalAnalyses="REQUIRED")),
    ("CUSTOM", custom()),
    ("CUSTOM", custom(allowedAnalyses=[], allowedAnalysisProviders=None)),
    ("CUSTOM", custom(allowedAnalyses=[TEMPLATE], allowedAnalysisProviders=None,
                      disallowedOutputColumns=["email_hash"], differentialPrivacy={"columns": [{"name": "user_id"}]})),
    ("CUSTOM", custom(allowedAnalyses=["ANY_QUERY", "ANY_JOB"], additionalAnalyses="ALLOWED")),
])
def test_valid_rules_pass(rule_type, policy):
    rules.check_rule(rule_type, policy, ALLOWED, "glue")


def test_policy_member_must_match_the_type():
    assert rules.policy_body("LIST", listing()) == listing()["v1"]["list"]
    for rule_type, policy in (("AGGREGATION", listing()), ("LIST", custom()), ("CUSTOM", aggregation())):
        error = rejected(rule_type, policy)
        assert field(error) == "analysisRulePolicy.v1"
        assert f"v1.{rules.POLICY_MEMBERS[rule_type]}" in error.message


@pytest.mark.parametrize("rule_type, policy, where", [
    ("AGGREGATION", aggregation(aggregateColumns=[{"columnNames": ["lifetime_value", "postcode"], "function": "AVG"}]),
     "aggregation.aggregateColumns.1.member.columnNames"),
    ("AGGREGATION", aggregation(aggregateColumns=[{"columnNames": ["segment"], "function": "AVG"},
                                                  {"columnNames": ["postcode"], "function": "SUM"}],
                                dimensionColumns=[]),
     "aggregation.aggregateColumns.2.member.columnNames"),
    ("AGGREGATION", aggregation(joinColumns=["postcode"]), "aggregation.joinColumns"),
    ("AGGREGATION", aggregation(dimensionColumns=["postcode"]), "aggregation.dimensionColumns"),
    ("AGGREGATION", aggregation(outputConstraints=[{"columnName": "user_id", "minimum": 2, "type": "COUNT_DISTINCT"},
                                                   {"columnName": "postcode", "minimum": 2, "type": "COUNT_DISTINCT"}]),
     "aggregation.outputConstraints.2.member.columnName"),
    ("LIST", listing(joinColumns=["postcode"]), "list.joinColumns"),
    ("LIST", listing(listColumns=["postcode"]), "list.listColumns"),
    ("CUSTOM", custom(disallowedOutputColumns=["postcode"]), "custom.disallowedOutputColumns"),
    ("CUSTOM", custom(differentialPrivacy={"columns": [{"name": "postcode"}]}),
     "custom.differentialPrivacy.columns.1.member.name"),
])
def test_every_named_column_must_be_allowed(rule_type, policy, where):
    error = rejected(rule_type, policy)
    assert error.fields["reason"] == "INVALID_CONFIGURATION"
    assert field(error) == "analysisRulePolicy.v1." + where
    assert error.message.endswith("postcode.")
    rules.check_rule(rule_type, policy, ALLOWED + ["postcode"], "glue")


def test_missing_columns_are_all_named_once():
    policy = listing(joinColumns=["zip", "user_id"], listColumns=["city", "zip"])
    error = rejected("LIST", policy)
    assert error.message.endswith(": city, zip.")
    assert error.fields["fieldList"][0]["message"].endswith(": zip")


def test_columns_used():
    policy = aggregation(outputConstraints=[{"columnName": "email_hash", "minimum": 2, "type": "COUNT_DISTINCT"}])
    assert rules.columns_used("AGGREGATION", policy) == {"lifetime_value", "user_id", "segment", "email_hash"}
    assert rules.columns_used("LIST", listing(listColumns=[])) == {"user_id"}
    assert rules.columns_used("CUSTOM", custom()) == set()
    assert rules.columns_used("CUSTOM", custom(disallowedOutputColumns=["segment"],
                                               differentialPrivacy={"columns": [{"name": "user_id"}]})) == \
        {"segment", "user_id"}


@pytest.mark.parametrize("policy, where", [
    (aggregation(dimensionColumns=["lifetime_value"]), "dimensionColumns"),  # an aggregate column
    (aggregation(dimensionColumns=["segment", "user_id"]), "dimensionColumns"),  # a join column
    (aggregation(joinColumns=[], joinRequired="QUERY_RUNNER"), "joinColumns"),
    (aggregation(additionalAnalyses="ALLOWED"), "additionalAnalyses"),
    (aggregation(additionalAnalyses="REQUIRED"), "additionalAnalyses"),
])
def test_aggregation_rules(policy, where):
    assert field(rejected("AGGREGATION", policy)) == "analysisRulePolicy.v1.aggregation." + where


@pytest.mark.parametrize("policy, where", [
    (custom(allowedAnalyses=["ANY_QUERY", TEMPLATE]), "allowedAnalyses"),
    (custom(allowedAnalyses=[TEMPLATE, "ANY_JOB"], allowedAnalysisProviders=None), "allowedAnalyses"),
    (custom(allowedAnalysisProviders=None), "allowedAnalysisProviders"),
    (custom(allowedAnalyses=["ANY_JOB"], allowedAnalysisProviders=[]), "allowedAnalysisProviders"),
    (custom(allowedAnalyses=[TEMPLATE]), "allowedAnalysisProviders"),
    (custom(allowedAnalyses=[], allowedAnalysisProviders=["444455556666"]), "allowedAnalysisProviders"),
])
def test_custom_rules_allow_templates_or_providers(policy, where):
    error = rejected("CUSTOM", policy)
    assert error.fields["reason"] == "INVALID_CONFIGURATION"
    assert field(error) == "analysisRulePolicy.v1.custom." + where


@pytest.mark.parametrize("rule_type, policy, where", [
    ("AGGREGATION", aggregation(aggregateColumns=[{"columnNames": ["lifetime_value", "lifetime_value"],
                                                   "function": "SUM"}]),
     "aggregation.aggregateColumns.1.member.columnNames"),
    ("AGGREGATION", aggregation(joinColumns=["user_id", "user_id"]), "aggregation.joinColumns"),
    ("AGGREGATION", aggregation(scalarFunctions=["ABS", "ABS"]), "aggregation.scalarFunctions"),
    ("AGGREGATION", aggregation(allowedJoinOperators=["OR", "OR"]), "aggregation.allowedJoinOperators"),
    ("LIST", listing(listColumns=["segment", "age_band", "segment"]), "list.listColumns"),
    ("CUSTOM", custom(allowedAnalysisProviders=["444455556666", "444455556666"]),
     "custom.allowedAnalysisProviders"),
    ("CUSTOM", custom(allowedAnalyses=[TEMPLATE, TEMPLATE], allowedAnalysisProviders=None), "custom.allowedAnalyses"),
    ("CUSTOM", custom(disallowedOutputColumns=["segment", "segment"]), "custom.disallowedOutputColumns"),
])
def test_lists_hold_each_value_once(rule_type, policy, where):
    error = rejected(rule_type, policy)
    assert error.fields["reason"] == "FIELD_VALIDATION_FAILED"
    assert field(error) == "analysisRulePolicy.v1." + where


@pytest.mark.parametrize("kind", ["snowflake", "athena"])
def test_non_s3_tables_support_only_custom_rules_without_differential_privacy(kind):
    for rule_type, policy in (("AGGREGATION", aggregation()), ("LIST", listing())):
        error = rejected(rule_type, policy, kind=kind)
        assert (error.fields["reason"], field(error)) == ("INVALID_CONFIGURATION", "analysisRuleType")
        assert kind in error.message
    rules.check_rule("CUSTOM", custom(disallowedOutputColumns=["segment"]), ALLOWED, kind)
    error = rejected("CUSTOM", custom(differentialPrivacy={"columns": [{"name": "user_id"}]}), kind=kind)
    assert field(error) == "analysisRulePolicy.v1.custom.differentialPrivacy"
    rules.check_rule("CUSTOM", custom(differentialPrivacy={"columns": [{"name": "user_id"}]}), ALLOWED, "glue")


def test_check_no_duplicates_names_each_repeat_once():
    rules.check_no_duplicates(["a", "b"], "allowedColumns")
    with pytest.raises(ServiceError) as info:
        rules.check_no_duplicates(["a", "b", "a", "c", "b", "a"], "allowedColumns")
    assert info.value.message == "allowedColumns lists the same value more than once: a, b."
    assert info.value.fields["fieldList"] == [{"name": "allowedColumns", "message": "Duplicate values: a, b"}]


THRESHOLD = {"identityColumns": ["user_id"], "minimumIdentityCount": 5, "type": "COUNT_DISTINCT",
             "allowedAggregateExpressionType": "COLUMNS_ONLY"}
CONTROLS = {"allowedLiteralComparisonColumns": ["segment"], "allowedColumnComparisonColumns": ["user_id"]}


def test_custom_rules_accept_aggregation_thresholds_and_comparison_controls():
    rules.check_rule("CUSTOM", custom(aggregationThresholds=[dict(THRESHOLD, outputColumnThresholds=[
        {"outputColumnName": "total", "minimumIdentityCount": 0},
        {"outputColumnName": "n", "minimumIdentityCount": 9}])],
        comparisonControls=CONTROLS), ALLOWED, "glue")


@pytest.mark.parametrize("changes, field, words", [
    ({"aggregationThresholds": [THRESHOLD], "differentialPrivacy": {"columns": [{"name": "user_id"}]}},
     "aggregationThresholds", "differential privacy"),
    ({"comparisonControls": CONTROLS, "differentialPrivacy": {"columns": [{"name": "user_id"}]}},
     "comparisonControls", "differential privacy"),
    ({"aggregationThresholds": [THRESHOLD], "allowedAnalyses": ["ANY_JOB"]}, "aggregationThresholds", "only jobs"),
    ({"aggregationThresholds": [THRESHOLD], "comparisonControls": dict(CONTROLS, allowedLiteralComparisonColumns=[
        "user_id"])}, "comparisonControls.allowedLiteralComparisonColumns", "identity column"),
    ({"aggregationThresholds": [dict(THRESHOLD, outputColumnThresholds=[
        {"outputColumnName": "n", "minimumIdentityCount": 1}])]},
     "aggregationThresholds.1.member.outputColumnThresholds.1.member.minimumIdentityCount", "at least 2"),
    ({"aggregationThresholds": [dict(THRESHOLD, outputColumnThresholds=[
        {"outputColumnName": "n", "minimumIdentityCount": 3}, {"outputColumnName": "n", "minimumIdentityCount": 4}])]},
     "aggregationThresholds.1.member.outputColumnThresholds", "more than once"),
    ({"aggregationThresholds": [dict(THRESHOLD, identityColumns=["nope"])]},
     "aggregationThresholds.1.member.identityColumns", "not allowed columns"),
    ({"comparisonControls": dict(CONTROLS, allowedColumnComparisonColumns=["nope"])},
     "comparisonControls.allowedColumnComparisonColumns", "not allowed columns"),
])
def test_custom_rule_controls_are_checked(changes, field, words):
    error = rejected("CUSTOM", custom(**changes))
    assert error.fields["fieldList"][0]["name"] == f"analysisRulePolicy.v1.custom.{field}"
    assert words in error.message
