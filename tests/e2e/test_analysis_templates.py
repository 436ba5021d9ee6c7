"""Analysis templates over HTTP, with several accounts: the membership-scoped lifecycle, the collaboration-wide reads,
the checks of SQL and parameters, PySpark artifacts read from an S3-compatible endpoint (moto's server), quotas,
and what other accounts can and cannot reach. Responses are checked against the model."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

import pytest

from opencleanrooms.catalog import commands as catalog_commands
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import tags as tag_service
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import PageTokens
from opencleanrooms.services.quotas import Quotas
from opencleanrooms.services.registry import load_all
from opencleanrooms.storage import tags as tag_store
from tests.e2e.test_table_associations import (  # noqa: F401  (`account` is a fixture)
    IMPRESSIONS,
    ROLE,
    UNKNOWN_ID,
    Account,
    account,
    associate,
    collaborate,
    create_table,
    custom_policy,
    field_names,
    table_rule,
)
from tests.support.builders import all_pages, raises
from tests.support.moto import MotoS3
from tests.support.server import ServerProcess

QUERY = ("SELECT c.segment, COUNT(DISTINCT c.user_id) AS users FROM customers c JOIN impressions i "
         "ON c.user_id = i.user_id WHERE i.clicks >= :min_clicks GROUP BY c.segment")
PARAMETERS = [{"name": "min_clicks", "type": "INTEGER", "defaultValue": "1"}]
SUMMARY_KEYS = ("arn", "createTime", "id", "name", "updateTime", "membershipArn", "membershipId", "collaborationArn",
                "collaborationId")
S3_KEY, S3_SECRET = "templatestestkey", "templates-test-secret"


def template(p, membership_id, name="overlap", text=QUERY, parameters=PARAMETERS, **extra) -> dict:
    request = {"membershipIdentifier": membership_id, "name": name, "format": "SQL", "source": {"text": text}}
    if parameters is not None:
        request["analysisParameters"] = parameters
    return p.client.create_analysis_template(**request, **extra)["analysisTemplate"]


def get(p, membership_id, template_id) -> dict:
    return p.client.get_analysis_template(membershipIdentifier=membership_id,
                                          analysisTemplateIdentifier=template_id)["analysisTemplate"]


def get_shared(p, collaboration_id, arn) -> dict:
    return p.client.get_collaboration_analysis_template(collaborationIdentifier=collaboration_id,
                                                        analysisTemplateArn=arn)["collaborationAnalysisTemplate"]


def summaries(p, membership_id) -> list[dict]:
    return all_pages(p.client, "list_analysis_templates", "analysisTemplateSummaries",
                     membershipIdentifier=membership_id)


def shared_summaries(p, collaboration_id) -> list[dict]:
    return all_pages(p.client, "list_collaboration_analysis_templates", "collaborationAnalysisTemplateSummaries",
                     collaborationIdentifier=collaboration_id)


def batch(p, collaboration_id, arns) -> dict:
    response = p.client.batch_get_collaboration_analysis_template(collaborationIdentifier=collaboration_id,
                                                                 analysisTemplateArns=arns)
    return {"found": response["collaborationAnalysisTemplates"], "errors": response["errors"]}


def shared_view(t, creator) -> dict:
    """The CollaborationAnalysisTemplate every member sees of an AnalysisTemplate."""
    view = {k: v for k, v in t.items() if k not in ("membershipId", "membershipArn")}
    view["creatorAccountId"] = creator.id
    return view


def summary_of(t) -> dict:
    summary = {k: t[k] for k in SUMMARY_KEYS}
    if "description" in t:
        summary["description"] = t["description"]
    summary["isSyntheticData"] = "syntheticDataParameters" in t
    return summary


def shared_summary_of(t, creator) -> dict:
    summary = {k: v for k, v in summary_of(t).items() if k not in ("membershipId", "membershipArn")}
    summary["creatorAccountId"] = creator.id
    return summary


def drop_associations(p, membership_id) -> None:
    for summary in p.client.list_configured_table_associations(
            membershipIdentifier=membership_id)["configuredTableAssociationSummaries"]:
        p.client.delete_configured_table_association(membershipIdentifier=membership_id,
                                                     configuredTableAssociationIdentifier=summary["id"])


@pytest.fixture
def world(account):
    """Alice (creator, can query) with `customers`, Bob (receives results) with `impressions`, both joined, and
    Carol, invited and not joined."""
    alice, bob, carol = account(), account(), account()
    collab = collaborate(alice, bob, invited=[carol])
    associate(alice, collab.mid(alice), create_table(alice)["id"], name="customers")
    associate(bob, collab.mid(bob), create_table(bob, name="impressions", reference=IMPRESSIONS)["id"],
              name="impressions")
    return alice, bob, carol, collab


# ------------------------------------------------------------------------------------------------ lifecycle


def test_template_lifecycle(server, world):
    alice, bob, carol, collab = world
    mid = collab.mid(alice)
    t = template(alice, mid, description="overlap by segment", tags={"env": "test"},
                 schema={"referencedTables": ["IMPRESSIONS", "customers", "customers"]})
    assert t["arn"] == f"arn:aws:cleanrooms:us-east-1:{alice.id}:membership/{mid}/analysistemplate/{t['id']}"
    assert (t["collaborationId"], t["collaborationArn"]) == (collab.id, collab.collaboration["arn"])
    assert (t["membershipId"], t["membershipArn"]) == (mid, collab.memberships[alice.id]["arn"])
    assert (t["name"], t["description"], t["format"]) == ("overlap", "overlap by segment", "SQL")
    assert (t["source"], t["analysisParameters"]) == ({"text": QUERY}, PARAMETERS)
    assert t["schema"] == {"referencedTables": ["customers", "impressions"]}  # derived from the SQL
    assert t["createTime"] == t["updateTime"]
    assert not {"sourceMetadata", "validations", "errorMessageConfiguration", "syntheticDataParameters"} & set(t)
    assert get(alice, mid, t["id"]) == t
    assert summaries(alice, mid) == [summary_of(t)]
    for viewer in (alice, bob, carol):  # every member, the invited one included, reviews the template
        assert get_shared(viewer, collab.id, t["arn"]) == shared_view(t, alice)
        assert shared_summaries(viewer, collab.id) == [shared_summary_of(t, alice)]
        assert batch(viewer, collab.id, [t["arn"]]) == {"found": [shared_view(t, alice)], "errors": []}
    with server.db.read() as conn:
        assert tag_store.get(conn, t["arn"]) == {"env": "test"}

    time.sleep(0.01)
    updated = alice.client.update_analysis_template(membershipIdentifier=mid, analysisTemplateIdentifier=t["id"],
                                                    description="renamed")["analysisTemplate"]
    assert updated["description"] == "renamed" and updated["updateTime"] > t["updateTime"]
    assert {k: v for k, v in updated.items() if k not in ("description", "updateTime")} == \
        {k: v for k, v in t.items() if k not in ("description", "updateTime")}
    assert get(alice, mid, t["id"]) == updated
    assert summaries(alice, mid) == [summary_of(updated)]
    assert get_shared(bob, collab.id, t["arn"]) == shared_view(updated, alice)
    assert shared_summaries(bob, collab.id) == [shared_summary_of(updated, alice)]
    time.sleep(0.01)
    touched = alice.client.update_analysis_template(membershipIdentifier=mid,
                                                    analysisTemplateIdentifier=t["id"])["analysisTemplate"]
    assert touched["updateTime"] > updated["updateTime"]
    assert {k: v for k, v in touched.items() if k != "updateTime"} == \
        {k: v for k, v in updated.items() if k != "updateTime"}

    response = alice.client.delete_analysis_template(membershipIdentifier=mid, analysisTemplateIdentifier=t["id"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    response = raises("ResourceNotFoundException", get, alice, mid, t["id"])
    assert (response["resourceType"], response["resourceId"]) == ("MEMBERSHIP", t["id"])
    raises("ResourceNotFoundException", alice.client.delete_analysis_template, membershipIdentifier=mid,
           analysisTemplateIdentifier=t["id"])
    response = raises("ResourceNotFoundException", get_shared, bob, collab.id, t["arn"])
    assert (response["resourceType"], response["resourceId"]) == ("COLLABORATION", t["arn"])
    assert summaries(alice, mid) == [] and shared_summaries(bob, collab.id) == []
    [error] = batch(bob, collab.id, [t["arn"]])["errors"]
    assert (error["arn"], error["code"]) == (t["arn"], "ResourceNotFoundException")
    with server.db.read() as conn:
        assert tag_store.get(conn, t["arn"]) == {}
    again = template(alice, mid)  # the name is free again
    assert again["id"] != t["id"] and "description" not in again


def test_optional_members_are_stored_as_given(world):
    alice, bob, _, collab = world
    mapping = [{"columnName": f"c{i}", "columnType": "CATEGORICAL", "isPredictiveValue": i == 0} for i in range(5)]
    synthetic = {"mlSyntheticDataParameters": {"epsilon": 1.5, "maxMembershipInferenceAttackScore": 0.75,
                                               "columnClassification": {"columnMapping": mapping}}}
    t = template(alice, collab.mid(alice), text="SELECT segment FROM customers", parameters=[],
                 errorMessageConfiguration={"type": "DETAILED"}, syntheticDataParameters=synthetic)
    assert (t["errorMessageConfiguration"], t["syntheticDataParameters"]) == ({"type": "DETAILED"}, synthetic)
    assert t["analysisParameters"] == [] and t["schema"] == {"referencedTables": ["customers"]}
    assert summaries(alice, collab.mid(alice))[0]["isSyntheticData"] is True
    assert shared_summaries(bob, collab.id)[0]["isSyntheticData"] is True
    assert get_shared(bob, collab.id, t["arn"]) == shared_view(t, alice)
    plain = template(alice, collab.mid(alice), name="plain", text="SELECT 1 AS one", parameters=None)
    assert "analysisParameters" not in plain and plain["schema"] == {"referencedTables": []}


def test_templates_are_immutable_but_for_their_description(world):
    alice, _, _, collab = world
    mid = collab.mid(alice)
    t = template(alice, mid, description="first")
    other_sql = "SELECT user_id FROM customers"

    def smuggle(request, **_):  # members UpdateAnalysisTemplate does not have, as a newer client might send
        body = json.loads(request.data or b"{}")
        body.update(name="renamed", format="PYSPARK_1_0", source={"text": other_sql}, analysisParameters=[],
                    schema={"referencedTables": ["impressions"]})
        request.data = json.dumps(body).encode()

    alice.client.meta.events.register("before-sign.cleanrooms.UpdateAnalysisTemplate", smuggle)
    try:
        updated = alice.client.update_analysis_template(membershipIdentifier=mid, analysisTemplateIdentifier=t["id"],
                                                        description="second")["analysisTemplate"]
    finally:
        alice.client.meta.events.unregister("before-sign.cleanrooms.UpdateAnalysisTemplate", smuggle)
    assert updated["description"] == "second"
    assert {k: updated[k] for k in ("name", "format", "source", "analysisParameters", "schema")} == \
        {k: t[k] for k in ("name", "format", "source", "analysisParameters", "schema")}
    assert get(alice, mid, t["id"]) == updated


def test_names_are_unique_within_a_membership(world):
    alice, bob, _, collab = world
    first = template(alice, collab.mid(alice), name="Overlap")
    response = raises("ConflictException", template, alice, collab.mid(alice), name="Overlap")
    assert (response["reason"], response["resourceType"], response["resourceId"]) == (
        "ALREADY_EXISTS", "MEMBERSHIP", "Overlap")
    assert [s["id"] for s in summaries(alice, collab.mid(alice))] == [first["id"]]
    assert template(alice, collab.mid(alice), name="overlap")["name"] == "overlap"  # names keep their case
    assert template(bob, collab.mid(bob), name="Overlap")["name"] == "Overlap"  # another membership
    alice.client.delete_analysis_template(membershipIdentifier=collab.mid(alice),
                                          analysisTemplateIdentifier=first["id"])
    assert template(alice, collab.mid(alice), name="Overlap")["id"] != first["id"]


# ------------------------------------------------------------------------------------------------ SQL checks


REFUSALS = [
    # (SQL, parameters, part of the message, field, reason)
    ("SELEC count(*) FROM customers", [],
     "The SQL is not valid: Invalid expression / Unexpected token at line 1, column 12 (near '(').",
     "source.text", "INVALID_QUERY"),
    ("SELECT count(*) FROM customers WHERE", [], "at line 1, column 32 (near 'WHERE')", "source.text",
     "INVALID_QUERY"),
    ("SELECT 'unterminated FROM customers", [], "unterminated string", "source.text", "INVALID_QUERY"),
    ("", [], "The analysis template's SQL is empty.", "source.text", "INVALID_QUERY"),
    ("SELECT count(*) FROM customers; SELECT count(*) FROM impressions", [], "a single statement; it has 2",
     "source.text", "INVALID_QUERY"),
    ("DELETE FROM customers", [], "must be a SELECT statement (optionally with WITH), not DELETE.", "source.text",
     "INVALID_QUERY"),
    ("INSERT INTO customers SELECT * FROM impressions", [], "not INSERT.", "source.text", "INVALID_QUERY"),
    ("SELECT count(*) FROM customers WHERE age_band = :band", [],
     "Parameters used in the SQL but not declared in analysisParameters: :band (line 1, column 49).",
     "source.text", "INVALID_CONFIGURATION"),
    ("SELECT count(*) FROM customers", [{"name": "band", "type": "STRING"}],
     "Parameters declared in analysisParameters but not used in the SQL: band.", "analysisParameters",
     "INVALID_CONFIGURATION"),
    ("SELECT user_id FROM customers WHERE age_band = :band LIMIT :n",
     [{"name": "band", "type": "STRING"}, {"name": "n", "type": "INTEGER"}],
     "Parameters are not supported in LIMIT: :n.", "source.text", "INVALID_QUERY"),
    ("SELECT user_id FROM customers WHERE age_band = ?", [], "Positional parameters", "source.text",
     "INVALID_QUERY"),
    ("SELECT * FROM :tbl", [{"name": "tbl", "type": "STRING"}], ":tbl is used as a table name", "source.text",
     "INVALID_QUERY"),
    ("SELECT * FROM customers c JOIN orders o ON c.user_id = o.user_id JOIN sales.customers s "
     "ON s.user_id = c.user_id", [], "not configured table associations of collaboration",
     "source.text", "INVALID_QUERY"),
    ("WITH orders AS (SELECT * FROM purchases) SELECT * FROM orders", [], ": purchases.", "source.text",
     "INVALID_QUERY"),
    ("SELECT count(*) FROM customers WHERE age_band = :band",
     [{"name": "band", "type": "STRING"}, {"name": "band", "type": "VARCHAR"}],
     "The parameter band is declared more than once.", "analysisParameters.2.member.name",
     "INVALID_CONFIGURATION"),
]


@pytest.mark.parametrize(("text", "parameters", "message", "field", "reason"), REFUSALS,
                         ids=[f"refusal{i}" for i in range(len(REFUSALS))])
def test_sql_templates_are_checked(world, text, parameters, message, field, reason):
    alice, _, _, collab = world
    response = raises("ValidationException", template, alice, collab.mid(alice), text=text, parameters=parameters)
    assert message in response["Error"]["Message"]
    assert (response["reason"], field_names(response)) == (reason, [field])
    for internal in ("sqlglot", "Traceback", "<class", "\x1b"):
        assert internal not in response["Error"]["Message"]
    assert summaries(alice, collab.mid(alice)) == []


def test_unknown_tables_are_all_named(world, account):
    alice, _, _, collab = world
    elsewhere = collaborate(alice, account())  # a relation of another collaboration is not one of this one
    associate(alice, elsewhere.mid(alice), create_table(alice, name="orders")["id"], name="orders")
    response = raises("ValidationException", template, alice, collab.mid(alice), parameters=[],
                      text="SELECT * FROM customers c JOIN Orders o ON c.user_id = o.user_id "
                           "JOIN sales.customers s ON s.user_id = c.user_id")
    assert response["Error"]["Message"] == (f"These tables are not configured table associations of collaboration "
                                            f"{collab.id}: orders, sales.customers.")


BAD_DEFAULTS = [("INTEGER", "abc", "'abc' is not a whole number"), ("SMALLINT", "40000", "outside -32768..32767"),
                ("DECIMAL", "1e5", "not a decimal number"), ("DOUBLE", "x1", "not a number"),
                ("BOOLEAN", "yes", "not true or false"), ("DATE", "2023-02-29", "not a calendar date"),
                ("TIMESTAMP_NTZ", "2024-01-01 10:00:00+01:00", "has a time zone"),
                ("TIME", "25:00", "not a time of day"), ("STRING", "", "empty values are not supported")]


@pytest.mark.parametrize(("parameter_type", "value", "problem"), BAD_DEFAULTS, ids=[b[0] for b in BAD_DEFAULTS])
def test_default_values_must_suit_their_type(world, parameter_type, value, problem):
    alice, _, _, collab = world
    parameters = [{"name": "ok", "type": "STRING", "defaultValue": "x"},
                  {"name": "p", "type": parameter_type, "defaultValue": value}]
    response = raises("ValidationException", template, alice, collab.mid(alice), parameters=parameters,
                      text="SELECT count(*) FROM customers WHERE segment = :ok AND age_band = :p")
    assert problem in response["Error"]["Message"] and f"not a valid {parameter_type}" in response["Error"]["Message"]
    assert field_names(response) == ["analysisParameters.2.member.defaultValue"]
    assert summaries(alice, collab.mid(alice)) == []


def test_default_values_of_every_family_are_accepted(world):
    alice, _, _, collab = world
    values = {"SMALLINT": "-5", "BIGINT": "9223372036854775807", "DECIMAL": "12.50", "REAL": "1.5e3",
              "BOOLEAN": "TRUE", "VARCHAR": "north", "DATE": "2024-02-29", "TIMESTAMP": "2024-01-31T10:00:00Z",
              "TIME": "12:30", "BINARY": "beef"}
    parameters = [{"name": f"p{i}", "type": t, "defaultValue": v} for i, (t, v) in enumerate(values.items())]
    parameters.append({"name": "no_default", "type": "TINYINT"})
    where = " AND ".join(f"x{i} = :{p['name']}" for i, p in enumerate(parameters))
    t = template(alice, collab.mid(alice), parameters=parameters, text=f"SELECT count(*) FROM customers WHERE {where}")
    assert t["analysisParameters"] == parameters


def test_referenced_tables_are_derived_from_the_sql(world):
    alice, _, _, collab = world
    mid = collab.mid(alice)
    cte = ("WITH impressions_by_user AS (SELECT user_id, sum(clicks) AS clicks FROM `Impressions` GROUP BY user_id), "
           "orders AS (SELECT * FROM impressions_by_user) "
           "SELECT count(*) FROM Customers c JOIN orders o ON c.user_id = o.user_id")
    t = template(alice, mid, name="cte", text=cte, parameters=[], schema={"referencedTables": []})
    assert t["schema"] == {"referencedTables": ["customers", "impressions"]}  # CTEs are not tables
    same = template(alice, mid, name="given", text=cte, parameters=[],
                    schema={"referencedTables": ["impressions", "CUSTOMERS"]})
    assert same["schema"] == t["schema"]
    for given, problem in ((["customers"], "read by the SQL but not listed: impressions"),
                           (["customers", "impressions", "orders"], "listed but not read by the SQL: orders")):
        response = raises("ValidationException", template, alice, mid, name="wrong", text=cte, parameters=[],
                          schema={"referencedTables": given})
        assert problem in response["Error"]["Message"]
        assert (response["reason"], field_names(response)) == ("INVALID_CONFIGURATION", ["schema.referencedTables"])
    assert [s["name"] for s in summaries(alice, mid)] == ["given", "cte"]


def test_differential_privacy_validation(world):
    alice, bob, _, collab = world
    mid = collab.mid(alice)
    plain = template(alice, mid, name="plain", text="SELECT user_id FROM customers", parameters=[])
    assert "validations" not in plain  # no referenced table uses differential privacy
    table = create_table(alice, name="private customers")
    associate(alice, mid, table["id"], name="private_customers")
    listing = template(alice, mid, name="listing", text="SELECT user_id FROM private_customers", parameters=[])
    counting = template(alice, mid, name="counting", parameters=[],
                        text="SELECT segment, COUNT(DISTINCT user_id) FROM private_customers GROUP BY segment")
    assert "validations" not in listing and "validations" not in counting
    table_rule(alice, table["id"], "CUSTOM", custom_policy(
        allowedAnalyses=[listing["arn"], counting["arn"]], allowedAnalysisProviders=None,
        differentialPrivacy={"columns": [{"name": "user_id"}]}))
    # validation is performed when templates are fetched, against the rules as they are now
    [invalid] = get(alice, mid, listing["id"])["validations"]
    assert (invalid["type"], invalid["status"]) == ("DIFFERENTIAL_PRIVACY", "INVALID")
    assert "final SELECT must aggregate" in invalid["reasons"][0]["message"]
    [unchecked] = get_shared(bob, collab.id, counting["arn"])["validations"]
    assert (unchecked["type"], unchecked["status"]) == ("DIFFERENTIAL_PRIVACY", "UNABLE_TO_VALIDATE")
    assert "private_customers" in unchecked["reasons"][0]["message"]
    assert [t.get("validations") for t in batch(bob, collab.id, [plain["arn"], listing["arn"]])["found"]] == \
        [None, [invalid]]
    created = template(alice, mid, name="created", text="SELECT max(user_id) FROM private_customers", parameters=[])
    assert created["validations"][0]["status"] == "INVALID"  # and when they are created


# ------------------------------------------------------------------------------------------------ memberships


def test_templates_need_an_active_membership_and_leave_with_their_member(world, account):
    alice, bob, carol, collab = world
    bob_template = template(bob, collab.mid(bob), text="SELECT count(*) FROM impressions", parameters=[])
    alice_template = template(alice, collab.mid(alice))  # reads Bob's impressions
    alice.client.delete_member(collaborationIdentifier=collab.id, accountId=bob.id)  # Bob's membership: REMOVED
    response = raises("ConflictException", template, bob, collab.mid(bob), name="later",
                      text="SELECT count(*) FROM impressions", parameters=[])
    assert (response["reason"], response["resourceType"], response["resourceId"]) == (
        "INVALID_STATE", "MEMBERSHIP", collab.mid(bob))
    assert "REMOVED" in response["Error"]["Message"]
    # Bob still reads and cleans up his own templates ...
    assert get(bob, collab.mid(bob), bob_template["id"])["id"] == bob_template["id"]
    assert [s["id"] for s in summaries(bob, collab.mid(bob))] == [bob_template["id"]]
    bob.client.update_analysis_template(membershipIdentifier=collab.mid(bob),
                                        analysisTemplateIdentifier=bob_template["id"], description="gone")
    # ... but they, and his table, have left the collaboration
    assert [s["id"] for s in shared_summaries(carol, collab.id)] == [alice_template["id"]]
    raises("ResourceNotFoundException", get_shared, alice, collab.id, bob_template["arn"])
    assert [e["arn"] for e in batch(alice, collab.id, [bob_template["arn"]])["errors"]] == [bob_template["arn"]]
    response = raises("ValidationException", template, alice, collab.mid(alice), name="again")
    assert response["Error"]["Message"].endswith(": impressions.")
    assert get_shared(carol, collab.id, alice_template["arn"])["id"] == alice_template["id"]
    bob.client.delete_analysis_template(membershipIdentifier=collab.mid(bob),
                                        analysisTemplateIdentifier=bob_template["id"])
    drop_associations(bob, collab.mid(bob))
    bob.client.delete_membership(membershipIdentifier=collab.mid(bob))

    dave = account()
    gone = collaborate(dave, account())
    associate(dave, gone.mid(dave), create_table(dave)["id"], name="customers")
    kept = template(dave, gone.mid(dave), text="SELECT count(*) FROM customers", parameters=[])
    dave.client.delete_collaboration(collaborationIdentifier=gone.id)  # Dave's: COLLABORATION_DELETED
    response = raises("ConflictException", template, dave, gone.mid(dave), name="x",
                      text="SELECT count(*) FROM customers", parameters=[])
    assert "COLLABORATION_DELETED" in response["Error"]["Message"]
    assert [s["id"] for s in summaries(dave, gone.mid(dave))] == [kept["id"]]
    raises("AccessDeniedException", get_shared, dave, gone.id, kept["arn"])


def test_a_membership_with_templates_cannot_be_deleted(world):
    alice, bob, _, collab = world
    mid = collab.mid(bob)
    made = [template(bob, mid, name=n, text="SELECT count(*) FROM impressions", parameters=[]) for n in "ab"]
    drop_associations(bob, mid)  # only the templates are left under the membership
    response = raises("ConflictException", bob.client.delete_membership, membershipIdentifier=mid)
    assert (response["reason"], response["resourceType"], response["resourceId"]) == (
        "SUBRESOURCES_EXIST", "MEMBERSHIP", mid)
    assert "2 analysis templates" in response["Error"]["Message"]
    bob.client.delete_analysis_template(membershipIdentifier=mid, analysisTemplateIdentifier=made[0]["id"])
    response = raises("ConflictException", bob.client.delete_membership, membershipIdentifier=mid)
    assert "1 analysis template;" in response["Error"]["Message"]
    assert bob.client.get_membership(membershipIdentifier=mid)["membership"]["status"] == "ACTIVE"
    bob.client.delete_analysis_template(membershipIdentifier=mid, analysisTemplateIdentifier=made[1]["id"])
    bob.client.delete_membership(membershipIdentifier=mid)
    members = alice.client.list_members(collaborationIdentifier=collab.id)["memberSummaries"]
    assert {m["accountId"]: m["status"] for m in members}[bob.id] == "LEFT"


# ------------------------------------------------------------------------------------------------ lists


def _pages(call, key, **params) -> tuple[list[list[str]], list[str]]:
    pages, tokens = [], []
    while True:
        page = call(**params, **({"nextToken": tokens[-1]} if tokens else {}))
        pages.append([s["id"] for s in page[key]])
        if not page.get("nextToken"):
            return pages, tokens
        tokens.append(page["nextToken"])


def test_lists_page_newest_first_and_tokens_are_bound(world, account):
    alice, bob, carol, collab = world
    made = []
    for i in range(7):
        p = alice if i % 2 == 0 else bob
        table = "customers" if p is alice else "impressions"
        made.append(template(p, collab.mid(p), name=f"t{i}", text=f"SELECT count(*) FROM {table}", parameters=[]))
    alice_ids = [t["id"] for t in reversed(made) if t["membershipId"] == collab.mid(alice)]
    pages, tokens = _pages(alice.client.list_analysis_templates, "analysisTemplateSummaries",
                           membershipIdentifier=collab.mid(alice), maxResults=3)
    assert pages == [alice_ids[:3], alice_ids[3:]]
    membership_token = tokens[0]
    pages, tokens = _pages(carol.client.list_collaboration_analysis_templates,
                           "collaborationAnalysisTemplateSummaries", collaborationIdentifier=collab.id, maxResults=3)
    assert [len(p) for p in pages] == [3, 3, 1] and sum(pages, []) == [t["id"] for t in reversed(made)]
    collaboration_token = tokens[0]

    other = collaborate(alice, account())
    for call, params in ((alice.client.list_analysis_templates, {"membershipIdentifier": other.mid(alice)}),
                         (bob.client.list_analysis_templates, {"membershipIdentifier": collab.mid(bob)}),
                         (alice.client.list_collaboration_analysis_templates, {"collaborationIdentifier": other.id}),
                         (alice.client.list_collaboration_analysis_templates, {"collaborationIdentifier": collab.id})):
        response = raises("ValidationException", call, nextToken=membership_token, **params)
        assert field_names(response) == ["nextToken"]
    for p in (bob, alice):  # another caller, or the same one in another collaboration
        response = raises("ValidationException", p.client.list_collaboration_analysis_templates,
                          collaborationIdentifier=collab.id if p is bob else other.id, nextToken=collaboration_token)
        assert field_names(response) == ["nextToken"]


def test_batch_get_answers_each_arn_once(world, account):
    alice, bob, _, collab = world
    a = template(alice, collab.mid(alice), text="SELECT count(*) FROM customers", parameters=[])
    b = template(bob, collab.mid(bob), text="SELECT count(*) FROM impressions", parameters=[])
    other = collaborate(alice, account())
    associate(alice, other.mid(alice), create_table(alice)["id"], name="customers")
    foreign = template(alice, other.mid(alice), text="SELECT count(*) FROM customers", parameters=[])
    unknown = a["arn"].replace(a["id"], UNKNOWN_ID)
    result = batch(bob, collab.id, [b["arn"], unknown, a["arn"], b["arn"], foreign["arn"]])
    assert result["found"] == [shared_view(b, bob), shared_view(a, alice)]
    assert [(e["arn"], e["code"]) for e in result["errors"]] == [
        (unknown, "ResourceNotFoundException"), (foreign["arn"], "ResourceNotFoundException")]
    messages = [e["message"].replace(e["arn"], "X") for e in result["errors"]]
    assert messages[0] == messages[1]  # a template of another collaboration is answered like an unknown one
    response = raises("ValidationException", bob.client.batch_get_collaboration_analysis_template,
                      collaborationIdentifier=collab.id, analysisTemplateArns=[a["arn"]] * 11)
    assert field_names(response) == ["analysisTemplateArns"]


# ------------------------------------------------------------------------------------------------ other accounts


def _membership_calls(client, mid, template_id):
    ids = {"membershipIdentifier": mid, "analysisTemplateIdentifier": template_id}
    return [
        ("CreateAnalysisTemplate", client.create_analysis_template,
         {"membershipIdentifier": mid, "name": "stolen", "format": "SQL",
          "source": {"text": "SELECT count(*) FROM customers"}}),
        ("GetAnalysisTemplate", client.get_analysis_template, ids),
        ("UpdateAnalysisTemplate", client.update_analysis_template, {**ids, "description": "stolen"}),
        ("DeleteAnalysisTemplate", client.delete_analysis_template, ids),
        ("ListAnalysisTemplates", client.list_analysis_templates, {"membershipIdentifier": mid}),
    ]


def _collaboration_calls(client, collaboration_id, arn):
    return [
        ("GetCollaborationAnalysisTemplate", client.get_collaboration_analysis_template,
         {"collaborationIdentifier": collaboration_id, "analysisTemplateArn": arn}),
        ("ListCollaborationAnalysisTemplates", client.list_collaboration_analysis_templates,
         {"collaborationIdentifier": collaboration_id}),
        ("BatchGetCollaborationAnalysisTemplate", client.batch_get_collaboration_analysis_template,
         {"collaborationIdentifier": collaboration_id, "analysisTemplateArns": [arn]}),
    ]


def _owner_view(server, p, collab, t) -> dict:
    with server.db.read() as conn:
        tags = tag_store.get(conn, t["arn"])
    return {"template": get(p, collab.mid(p), t["id"]), "list": summaries(p, collab.mid(p)),
            "shared": shared_summaries(p, collab.id), "tags": tags}


def test_other_accounts_reach_no_template(server, world, account):
    alice, bob, carol, collab = world
    outsider, stranger = account(), account()
    other = collaborate(outsider, account())  # the outsider is active in another collaboration
    associate(outsider, other.mid(outsider), create_table(outsider)["id"], name="customers")
    mid = collab.mid(alice)
    t = template(alice, mid, tags={"k": "v"})
    before = _owner_view(server, alice, collab, t)

    attackers = {"member": (bob, collab.mid(bob)), "invitee": (carol, None),
                 "other": (outsider, other.mid(outsider)), "stranger": (stranger, None)}
    for role, (p, own_mid) in attackers.items():
        # membership calls on Alice's membership: as if it did not exist
        for (name, call, params), (_, unknown_call, unknown_params) in zip(
                _membership_calls(p.client, mid, t["id"]), _membership_calls(p.client, UNKNOWN_ID, t["id"])):
            foreign = raises("ResourceNotFoundException", call, **params)
            unknown = raises("ResourceNotFoundException", unknown_call, **unknown_params)
            assert (foreign["resourceType"], foreign["resourceId"]) == ("MEMBERSHIP", mid), (role, name)
            assert foreign["Error"]["Message"].replace(mid, "X") == \
                unknown["Error"]["Message"].replace(UNKNOWN_ID, "X"), (role, name)
        if own_mid:  # Alice's template id under the attacker's own membership does not exist there either
            for name, call, params in _membership_calls(p.client, own_mid, t["id"])[1:4]:
                response = raises("ResourceNotFoundException", call, **params)
                assert (response["resourceType"], response["resourceId"]) == ("MEMBERSHIP", t["id"]), (role, name)
            assert t["id"] not in [s["id"] for s in summaries(p, own_mid)]
        if role in ("member", "invitee"):  # members review the collaboration's templates (test_template_lifecycle)
            assert get_shared(p, collab.id, t["arn"])["id"] == t["id"]
            continue
        # collaboration calls: Alice's collaboration, like an unknown one, is denied
        for (name, call, params), (_, unknown_call, unknown_params) in zip(
                _collaboration_calls(p.client, collab.id, t["arn"]),
                _collaboration_calls(p.client, UNKNOWN_ID, t["arn"])):
            denied = raises("AccessDeniedException", call, **params)
            unknown = raises("AccessDeniedException", unknown_call, **unknown_params)
            assert denied["Error"]["Message"].replace(collab.id, "X") == \
                unknown["Error"]["Message"].replace(UNKNOWN_ID, "X"), (role, name)
        if own_mid:  # nor does the template show through the attacker's own collaboration
            response = raises("ResourceNotFoundException", get_shared, p, other.id, t["arn"])
            assert response["resourceId"] == t["arn"]
            assert [e["arn"] for e in batch(p, other.id, [t["arn"]])["errors"]] == [t["arn"]]
            assert shared_summaries(p, other.id) == []
        for call, extra in ((p.client.list_tags_for_resource, {}), (p.client.tag_resource, {"tags": {"x": "y"}}),
                            (p.client.untag_resource, {"tagKeys": ["k"]})):
            raises("ValidationException", call, resourceArn=t["arn"], **extra)  # see test_tags_on_templates
    assert _owner_view(server, alice, collab, t) == before


def _ctx(server, p, operation: str) -> RequestContext:
    return RequestContext(request_id="r", account_id=p.id, region="us-east-1", operation=operation, now=time.time(),
                          db=server.db, tokens=PageTokens(b"k" * 32), quotas=Quotas())


def test_tags_on_templates(server, world):
    """Template ARNs are longer than the 100 characters the model allows the tag operations, so those refuse them
    as input (as on AWS). Behind that check the tag operations resolve template ARNs for their owner only; that
    part is exercised in process. Tags given at creation are kept (test_template_lifecycle)."""
    load_all()
    alice, bob, _, collab = world
    mid = collab.mid(alice)
    t = template(alice, mid, tags={"env": "dev"})
    response = raises("ValidationException", alice.client.list_tags_for_resource, resourceArn=t["arn"])
    assert field_names(response) == ["resourceArn"] and len(t["arn"]) > 100

    def call(p, operation, arn=t["arn"], **params):
        handler = {"TagResource": tag_service.tag_resource, "UntagResource": tag_service.untag_resource,
                   "ListTagsForResource": tag_service.list_tags_for_resource}[operation]
        return handler(_ctx(server, p, operation), {"resourceArn": arn, **params})

    call(alice, "TagResource", tags={"team": "x"})
    call(alice, "UntagResource", tagKeys=["env"])
    assert call(alice, "ListTagsForResource") == {"tags": {"team": "x"}}
    assert call(alice, "ListTagsForResource", arn=collab.memberships[alice.id]["arn"]) == {"tags": {}}  # still works
    for p, arn in ((bob, t["arn"]), (alice, t["arn"].replace(t["id"], UNKNOWN_ID)),
                   (alice, t["arn"].replace(mid, collab.mid(bob))),
                   (alice, t["arn"].replace("analysistemplate", "somethingelse"))):
        with pytest.raises(ServiceError) as info:
            call(p, "ListTagsForResource", arn=arn)
        assert (info.value.code, info.value.fields["resourceType"]) == ("ResourceNotFoundException", "MEMBERSHIP")
    alice.client.delete_analysis_template(membershipIdentifier=mid, analysisTemplateIdentifier=t["id"])
    with pytest.raises(ServiceError):
        call(alice, "ListTagsForResource")


# ------------------------------------------------------------------------------------------------ PySpark, quota


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A server of its own, with moto's S3 as its S3 endpoint and room for 2 analysis templates per membership;
    and an S3 client for that endpoint."""
    base = tmp_path_factory.mktemp("templates-s3")
    with MotoS3(base, key=S3_KEY, secret=S3_SECRET) as moto:
        config = moto.server_config(base / "config.toml")
        process = ServerProcess(base / "server", "--config", str(config), "--quota", "analysis_templates=2").start()
        yield process, moto.client()
        process.stop()


def _spark_world(server):
    alice, bob = Account(server), Account(server)
    collab = collaborate(alice, bob, analyticsEngine="SPARK")
    associate(alice, collab.mid(alice), create_table(alice)["id"], name="customers")
    associate(bob, collab.mid(bob), create_table(bob, name="impressions", reference=IMPRESSIONS)["id"],
              name="impressions")
    return alice, bob, collab


def _job(p, membership_id, artifacts, name="job", **extra) -> dict:
    extra.setdefault("schema", {"referencedTables": ["Impressions", "customers"]})
    return p.client.create_analysis_template(membershipIdentifier=membership_id, name=name, format="PYSPARK_1_0",
                                             source={"artifacts": artifacts}, **extra)["analysisTemplate"]


def _artifacts(bucket, entry="jobs/main.py", additional=None) -> dict:
    artifacts = {"entryPoint": {"location": {"bucket": bucket, "key": entry}}, "roleArn": ROLE}
    if additional:
        artifacts["additionalArtifacts"] = [{"location": {"bucket": bucket, "key": additional}}]
    return artifacts


def test_pyspark_templates_record_their_artifacts_hashes(s3_server):
    server, s3 = s3_server
    alice, bob, collab = _spark_world(server)
    bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    script, venv = b"from pyspark.sql import SparkSession\nprint('hi')\n", os.urandom(3000)
    s3.put_object(Bucket=bucket, Key="jobs/main.py", Body=script)
    s3.put_object(Bucket=bucket, Key="jobs/venv.tar.gz", Body=venv)
    artifacts = _artifacts(bucket, additional="jobs/venv.tar.gz")
    parameters = [{"name": "threshold", "type": "DOUBLE", "defaultValue": "0.5"}]
    t = _job(alice, collab.mid(alice), artifacts, analysisParameters=parameters,
             errorMessageConfiguration={"type": "DETAILED"})
    assert t["sourceMetadata"] == {"artifacts": {
        "entryPointHash": {"sha256": hashlib.sha256(script).hexdigest()},
        "additionalArtifactHashes": [{"sha256": hashlib.sha256(venv).hexdigest()}]}}
    assert (t["format"], t["source"], t["analysisParameters"]) == ("PYSPARK_1_0", {"artifacts": artifacts}, parameters)
    assert t["schema"] == {"referencedTables": ["customers", "impressions"]}
    assert get_shared(bob, collab.id, t["arn"]) == shared_view(t, alice)
    newer = alice.client.create_analysis_template(
        membershipIdentifier=collab.mid(alice), name="runtime two", format="PYSPARK_2_0",
        source={"artifacts": artifacts}, schema={"referencedTables": ["impressions"]})["analysisTemplate"]
    assert newer["format"] == "PYSPARK_2_0" and newer["sourceMetadata"] == t["sourceMetadata"]
    alice.client.delete_analysis_template(membershipIdentifier=collab.mid(alice), analysisTemplateIdentifier=newer["id"])
    only_entry = _job(alice, collab.mid(alice), _artifacts(bucket), name="entry only")
    assert only_entry["sourceMetadata"] == {"artifacts": {"entryPointHash": {"sha256": hashlib.sha256(
        script).hexdigest()}}}


def test_pyspark_templates_are_checked(s3_server, tmp_path):
    server, s3 = s3_server
    alice, bob, collab = _spark_world(server)
    mid = collab.mid(alice)
    bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="jobs/main.py", Body=b"print(1)\n")
    s3.put_object(Bucket=bucket, Key="bob/data.csv", Body=b"user_id\nu1\n")
    catalog_commands.add_table(server.db, account_id=bob.id, database="private", table="data",
                               location=f"s3://{bucket}/bob/", format="csv")

    def refused(field, message, artifacts=None, **extra):
        response = raises("ValidationException", _job, alice, mid, artifacts or _artifacts(bucket), **extra)
        assert field_names(response) == [field], response
        assert message in response["Error"]["Message"], response["Error"]["Message"]
        return response["Error"]["Message"]

    missing = refused("source.artifacts.entryPoint.location", "cannot be read: no object that this account may "
                      "read is there", _artifacts(bucket, entry="jobs/nothing.py"))
    # another account's catalog data is answered as if nothing were there
    private = refused("source.artifacts.entryPoint.location", "cannot be read",
                      _artifacts(bucket, entry="bob/data.csv"))
    assert missing.replace("jobs/nothing.py", "X") == private.replace("bob/data.csv", "X")
    refused("source.artifacts.additionalArtifacts.1.member.location", "cannot be read",
            _artifacts(bucket, additional="jobs/venv.tar.gz"))
    refused("source.artifacts.entryPoint.location", "cannot be read", {
        "entryPoint": {"location": {"bucket": "no-such-bucket-here", "key": "main.py"}}, "roleArn": ROLE})
    refused("schema.referencedTables", "must name the tables it reads", schema={})
    refused("schema.referencedTables", "not configured table associations", schema={"referencedTables": ["orders"]})
    for pyspark in ("PYSPARK_1_0", "PYSPARK_2_0"):  # botocore 1.44 added the 2.0 runtime
        response = raises("ValidationException", alice.client.create_analysis_template, membershipIdentifier=mid,
                          name="text", format=pyspark, source={"text": "SELECT 1"})
        assert field_names(response) == ["source"]
    sql_collab = collaborate(alice, bob)  # the default engine runs no PySpark
    associate(alice, sql_collab.mid(alice), create_table(alice, name="again")["id"], name="customers")
    response = raises("ValidationException", _job, alice, sql_collab.mid(alice), _artifacts(bucket),
                      schema={"referencedTables": ["customers"]})
    assert field_names(response) == ["format"] and "SPARK" in response["Error"]["Message"]
    assert summaries(alice, mid) == [] and summaries(alice, sql_collab.mid(alice)) == []


def test_pyspark_artifacts_need_an_s3_endpoint(account):
    alice, bob = account(), account()  # on the shared server, which has no [s3] settings
    collab = collaborate(alice, bob, analyticsEngine="SPARK")
    associate(alice, collab.mid(alice), create_table(alice)["id"], name="customers")
    response = raises("ValidationException", _job, alice, collab.mid(alice), _artifacts("some-bucket"),
                      schema={"referencedTables": ["customers"]})
    assert field_names(response) == ["source.artifacts"] and "no S3 endpoint" in response["Error"]["Message"]
    assert summaries(alice, collab.mid(alice)) == []


def test_templates_per_membership_quota(s3_server):
    server, _ = s3_server
    alice, bob, collab = _spark_world(server)
    mid = collab.mid(alice)
    first, _ = (template(alice, mid, name=n, text="SELECT count(*) FROM customers", parameters=[]) for n in "ab")
    response = raises("ServiceQuotaExceededException", template, alice, mid, name="c",
                      text="SELECT count(*) FROM customers", parameters=[])
    assert (response["quotaName"], response["quotaValue"]) == ("Analysis templates per membership", 2.0)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 402
    assert len(summaries(alice, mid)) == 2
    template(bob, collab.mid(bob), name="c", text="SELECT count(*) FROM impressions", parameters=[])  # per membership
    alice.client.delete_analysis_template(membershipIdentifier=mid, analysisTemplateIdentifier=first["id"])
    assert template(alice, mid, name="c", text="SELECT count(*) FROM customers", parameters=[])["name"] == "c"
