"""What intermediate tables inherit and what their rules may say (services/intermediate_constraints.py), without a
server: base-table rows as storage gives them, and plans from the real policy layer."""

from __future__ import annotations

import pytest

from opencleanrooms import policy
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import intermediate_constraints as constraints
from opencleanrooms.services.protected_queries import ExtraTable

pytestmark = pytest.mark.backend_independent

ALICE, BOB, CAROL = "111111111111", "222222222222", "333333333333"
COLUMNS = (("user_id", "string"), ("email", "string"), ("segment", "string"))


def association(name: str, owner: str, receivers: list[str], disallowed=(), additional=None) -> dict:
    """A schema row: a CUSTOM configured table rule and a CUSTOM collaboration rule."""
    table_rule = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [ALICE],
                  "disallowedOutputColumns": list(disallowed)}
    if additional:
        table_rule["additionalAnalyses"] = additional
    return {"id": f"id-{name}", "account_id": owner, "rule_type": "CUSTOM", "table_rule_type": "CUSTOM",
            "rule_policy": {"v1": {"custom": {"allowedResultReceivers": receivers}}},
            "table_rule_policy": {"v1": {"custom": table_rule}}}


def plan_over(sql: str, rows: dict) -> policy.Plan:
    tables = {name: policy.TableInfo(name, row["account_id"], COLUMNS, "CUSTOM",
                                     row["table_rule_policy"]["v1"]["custom"]) for name, row in rows.items()}
    return policy.plan_query(policy.QueryRequest(sql=sql, runner_account_id=ALICE, tables=tables,
                                                 defer_output_controls=True))


def test_inherited_constraints_are_the_strictest_combination_with_their_sources():
    rows = {"a": association("a", ALICE, [ALICE, BOB], disallowed=["email"], additional="ALLOWED"),
            "b": association("b", BOB, [ALICE, CAROL], additional="REQUIRED")}
    plan = plan_over("SELECT a.user_id, UPPER(a.email) AS mail FROM a JOIN b ON a.user_id = b.user_id", rows)
    inherited = constraints.inherit(plan, rows, {})
    assert inherited["allowedResultReceivers"]["value"] == [ALICE]
    assert [s["name"] for s in inherited["allowedResultReceivers"]["sources"]] == ["a", "b"]
    assert inherited["additionalAnalyses"]["value"] == "REQUIRED"
    assert inherited["disallowedOutputColumns"] == {"value": ["mail"], "columnLineage": [{
        "column": "mail", "sourceColumn": "email", "sourceName": "a", "sourceId": "id-a", "sourceType": "TABLE",
        "sourceAccountId": ALICE}]}
    assert "allowedAdditionalAnalyses" not in inherited  # no base table sets it


def test_dependencies_are_direct_and_indirect_through_intermediate_tables():
    rows = {"a": association("a", ALICE, [ALICE])}
    parent = ExtraTable(info=policy.TableInfo("p", BOB, COLUMNS, "CUSTOM", {}), id="id-p", allowed_receivers=(),
                        location=None, dependencies=({"id": "id-x", "name": "x", "type": "TABLE",
                                                      "parentType": "DIRECT", "creatorAccountId": CAROL},))
    found = constraints.dependencies(("a", "p"), rows, {"p": parent})
    assert [(d["name"], d["type"], d["parentType"], d["creatorAccountId"]) for d in found] == [
        ("a", "TABLE", "DIRECT", ALICE), ("p", "INTERMEDIATE_TABLE", "DIRECT", BOB), ("x", "TABLE", "INDIRECT", CAROL)]


def table_row(rule: dict | None = None, owner: str = ALICE) -> dict:
    return {"account_id": owner, "rule_policy": {"v1": {"custom": rule}} if rule else None}


def version(inherited: dict, dependency_owner: str) -> dict:
    return {"doc": {"columns": [["user_id", "string"], ["mail", "string"]], "inheritedConstraints": inherited,
                    "dependencies": [{"id": "d", "name": "d", "type": "TABLE", "parentType": "DIRECT",
                                      "creatorAccountId": dependency_owner}]}}


INHERITED = {"allowedResultReceivers": {"value": [ALICE, BOB], "sources": []},
             "disallowedOutputColumns": {"value": ["mail"], "columnLineage": []},
             "additionalAnalyses": {"value": "ALLOWED", "sources": []}}


def test_the_effective_constraints_combine_the_rule_and_what_was_inherited():
    rule = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [ALICE],
            "allowedResultReceivers": [BOB, CAROL], "disallowedOutputColumns": ["user_id"],
            "additionalAnalyses": "NOT_ALLOWED"}
    effective = constraints.effective(table_row(rule), version(INHERITED, BOB))
    assert effective["allowedResultReceivers"] == [BOB]  # CAROL is not allowed by the base tables
    assert effective["disallowedOutputColumns"] == ["mail", "user_id"]
    assert effective["additionalAnalyses"] == "ALLOWED"
    assert constraints.effective(table_row(None), None)["allowedResultReceivers"] is None  # fails closed: none


@pytest.mark.parametrize("change, allowed", [
    ({}, False),  # disallowedOutputColumns must include the inherited `mail`
    ({"disallowedOutputColumns": ["mail"]}, True),
    ({"disallowedOutputColumns": ["mail"], "allowedResultReceivers": [CAROL]}, False),
    ({"disallowedOutputColumns": ["mail"], "allowedResultReceivers": [BOB]}, True),
    ({"disallowedOutputColumns": ["mail"], "additionalAnalyses": "NOT_ALLOWED"}, False),
    ({"disallowedOutputColumns": ["mail", "nope"]}, False),  # not a column of the table
])
def test_a_multi_party_rule_can_only_be_stricter(change, allowed):
    rule = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [ALICE], **change}
    check = lambda: constraints.check_rule(table_row(), version(INHERITED, BOB), {"v1": {"custom": rule}})  # noqa: E731
    if allowed:
        check()
    else:
        with pytest.raises(ServiceError):
            check()


def test_a_first_party_rule_has_full_control():
    rule = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [ALICE], "allowedResultReceivers": [CAROL]}
    constraints.check_rule(table_row(), version(INHERITED, ALICE), {"v1": {"custom": rule}})


def test_column_names_an_analysis_rule_can_name():
    assert constraints.column_name_ok("users") and constraints.column_name_ok("user id-2")
    assert not constraints.column_name_ok("COUNT(1)") and not constraints.column_name_ok("Users")
