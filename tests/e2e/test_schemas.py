"""Schemas over HTTP: the relations every member of a collaboration sees, their columns (read from the sample data),
their status as the configuration changes, and their analysis rules. Responses are checked against the model."""

from __future__ import annotations

import shutil
import time

import pytest

from opencleanrooms.catalog import commands as catalog_commands
from tests.e2e.test_table_associations import (  # noqa: F401  (`account` is a fixture)
    CUSTOMER_COLUMNS,
    CUSTOMERS,
    IMPRESSION_COLUMNS,
    IMPRESSIONS,
    SAMPLES,
    UNKNOWN_ID,
    account,
    associate,
    collaborate,
    collaboration_rule,
    create_table,
    custom_policy,
    field_names,
    list_policy,
    table_rule,
)
from tests.support.builders import all_pages, raises

CUSTOMER_TYPES = {"user_id": "string", "segment": "string", "age_band": "string", "lifetime_value": "double",
                  "signup_date": "date"}
IMPRESSION_TYPES = {"user_id": "string", "campaign_id": "string", "impression_time": "timestamp",
                    "clicks": "bigint", "spend": "double"}
SNOWFLAKE = {"snowflake": {
    "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:snowflake-AbCdEf",
    "accountIdentifier": "xy12345.us-east-1", "databaseName": "SALES", "schemaName": "PUBLIC",
    "tableName": "ORDERS", "tableSchema": {"v1": [{"columnName": "order_id", "columnType": "VARCHAR(36)"},
                                                  {"columnName": "amount", "columnType": "NUMBER(10,2)"}]}}}
ATHENA = {"athena": {"workGroup": "primary", "databaseName": "sales", "tableName": "orders"}}


def schema(p, collaboration_id, name) -> dict:
    return p.client.get_schema(collaborationIdentifier=collaboration_id, name=name)["schema"]


def schema_list(p, collaboration_id, **params) -> list[dict]:
    return all_pages(p.client, "list_schemas", "schemaSummaries", collaborationIdentifier=collaboration_id, **params)


def status(p, collaboration_id, name) -> dict:
    """analysisType -> (status, [reason codes]) of the schema now."""
    return {d["analysisType"]: (d["status"], [r["code"] for r in d.get("reasons", [])])
            for d in schema(p, collaboration_id, name)["schemaStatusDetails"]}


def rule_of(p, collaboration_id, name, rule_type) -> dict:
    return p.client.get_schema_analysis_rule(collaborationIdentifier=collaboration_id, name=name,
                                             type=rule_type)["analysisRule"]


@pytest.fixture
def trio(account):
    """Alice (creator, can query), Bob (receives results), both joined, and Carol, invited and not joined."""
    alice, bob, carol = account(), account(), account()
    return alice, bob, carol, collaborate(alice, bob, invited=[carol])


# ------------------------------------------------------------------------------------------------ content


def test_every_member_sees_one_schema_per_association(trio):
    alice, bob, carol, collab = trio
    customers = alice.client.create_configured_table(
        name="customers", tableReference=CUSTOMERS, allowedColumns=CUSTOMER_COLUMNS, analysisMethod="MULTIPLE",
        selectedAnalysisMethods=["DIRECT_QUERY", "DIRECT_JOB"])["configuredTable"]
    table_rule(alice, customers["id"], "LIST")
    impressions = create_table(bob, name="impressions", reference=IMPRESSIONS)
    a = associate(alice, collab.mid(alice), customers["id"], name="Customers", description="advertiser customers")
    b = associate(bob, collab.mid(bob), impressions["id"], name="impressions")

    expected_a = {
        "name": "customers", "type": "TABLE", "creatorAccountId": alice.id, "createTime": a["createTime"],
        "collaborationId": collab.id, "collaborationArn": collab.collaboration["arn"],
        "analysisRuleTypes": ["LIST"], "analysisMethod": "MULTIPLE",
        "selectedAnalysisMethods": ["DIRECT_QUERY", "DIRECT_JOB"],
        "resourceArn": f"arn:aws:cleanrooms:us-east-1:{alice.id}:membership/{collab.mid(alice)}/"
                       f"configuredtableassociation/{a['id']}"}
    expected_b = {
        "name": "impressions", "type": "TABLE", "creatorAccountId": bob.id, "createTime": b["createTime"],
        "collaborationId": collab.id, "collaborationArn": collab.collaboration["arn"], "analysisRuleTypes": [],
        "analysisMethod": "DIRECT_QUERY",
        "resourceArn": f"arn:aws:cleanrooms:us-east-1:{bob.id}:membership/{collab.mid(bob)}/"
                       f"configuredtableassociation/{b['id']}"}
    for viewer in (alice, bob, carol):  # the invited account sees them before it joins
        listed = schema_list(viewer, collab.id)
        assert [{k: v for k, v in s.items() if k != "updateTime"} for s in listed] == [expected_b, expected_a]
        full_a = schema(viewer, collab.id, "CUSTOMERS")  # names are looked up ignoring case
        assert {k: full_a[k] for k in expected_a} == expected_a and full_a["updateTime"] == listed[1]["updateTime"]
        assert full_a["columns"] == [{"name": c, "type": CUSTOMER_TYPES[c]} for c in CUSTOMER_COLUMNS]
        assert (full_a["partitionKeys"], full_a["description"]) == ([], "advertiser customers")
        assert full_a["schemaTypeProperties"] == {"configuredTableAssociation": {"configuredTableAssociationId":
                                                                                  a["id"]}}
        full_b = schema(viewer, collab.id, "impressions")
        assert {k: full_b[k] for k in expected_b} == expected_b and "selectedAnalysisMethods" not in full_b
        assert full_b["columns"] == [{"name": c, "type": IMPRESSION_TYPES[c]} for c in IMPRESSION_COLUMNS]
        assert full_b["description"] == ""
        response = raises("ResourceNotFoundException", viewer.client.get_schema, collaborationIdentifier=collab.id,
                          name="orders")
        assert (response["resourceType"], response["resourceId"]) == ("CONFIGURED_TABLE_ASSOCIATION", "orders")


def test_schemas_follow_the_tables_and_memberships_behind_them(account, trio):
    alice, bob, _, collab = trio
    table = create_table(alice)
    a = associate(alice, collab.mid(alice), table["id"])
    before = schema(bob, collab.id, "customers")
    time.sleep(0.01)
    alice.client.update_configured_table(configuredTableIdentifier=table["id"], allowedColumns=["user_id", "segment"])
    after = schema(bob, collab.id, "customers")
    assert after["columns"] == [{"name": "user_id", "type": "string"}, {"name": "segment", "type": "string"}]
    assert after["updateTime"] > before["updateTime"] and after["createTime"] == before["createTime"]
    time.sleep(0.01)
    table_rule(alice, table["id"], "LIST", list_policy(listColumns=["segment"]))
    ruled = schema(bob, collab.id, "customers")
    assert ruled["analysisRuleTypes"] == ["LIST"] and ruled["updateTime"] > after["updateTime"]

    bob_table = create_table(bob, name="impressions", reference=IMPRESSIONS)
    associate(bob, collab.mid(bob), bob_table["id"], name="impressions")
    assert [s["name"] for s in schema_list(alice, collab.id)] == ["impressions", "customers"]
    alice.client.delete_member(collaborationIdentifier=collab.id, accountId=bob.id)  # its data leaves with it
    assert [s["name"] for s in schema_list(alice, collab.id)] == ["customers"]
    raises("ResourceNotFoundException", alice.client.get_schema, collaborationIdentifier=collab.id,
           name="impressions")
    alice.client.delete_configured_table_association(membershipIdentifier=collab.mid(alice),
                                                     configuredTableAssociationIdentifier=a["id"])
    assert schema_list(alice, collab.id) == []


def test_column_types_of_other_sources(server, account, tmp_path):
    alice, bob = account(), account()
    collab = collaborate(alice, bob)
    copy = tmp_path / "customers.parquet"
    shutil.copy(SAMPLES.joinpath("customers.parquet"), copy)
    catalog_commands.add_table(server.db, account_id=alice.id, database="scratch", table="customers",
                               location=str(copy))
    sources = {"orders": (SNOWFLAKE, ["amount", "order_id"]), "athena_orders": (ATHENA, ["order_id"]),
               "scratch": ({"glue": {"databaseName": "scratch", "tableName": "customers"}}, ["user_id", "segment"])}
    for name, (reference, columns) in sources.items():
        associate(alice, collab.mid(alice), create_table(alice, name=name, reference=reference,
                                                         columns=columns)["id"], name=name)
    assert schema(bob, collab.id, "orders")["columns"] == [  # Snowflake: the types its tableSchema gives
        {"name": "amount", "type": "NUMBER(10,2)"}, {"name": "order_id", "type": "VARCHAR(36)"}]
    assert schema(bob, collab.id, "athena_orders")["columns"] == [{"name": "order_id", "type": "unknown"}]
    assert schema(bob, collab.id, "scratch")["columns"] == [{"name": "user_id", "type": "string"},
                                                           {"name": "segment", "type": "string"}]
    copy.unlink()  # the data cannot be read any more: the columns stay, their types are unknown
    assert schema(bob, collab.id, "scratch")["columns"] == [{"name": "user_id", "type": "unknown"},
                                                           {"name": "segment", "type": "unknown"}]


# ------------------------------------------------------------------------------------------------ status


def test_direct_analysis_status_follows_rules_and_receivers(account):
    alice, bob, dave = account(), account(), account()
    collab = collaborate(alice, bob, dave)  # Bob and Dave can receive results
    mid = collab.mid(alice)
    table = create_table(alice)
    a = associate(alice, mid, table["id"])
    assert status(bob, collab.id, "customers") == {"DIRECT_ANALYSIS": ("NOT_READY", ["ANALYSIS_RULE_MISSING"])}
    [detail] = schema(bob, collab.id, "customers")["schemaStatusDetails"]
    assert "analysisRuleType" not in detail and detail["reasons"][0]["message"]

    table_rule(alice, table["id"], "LIST")
    assert status(bob, collab.id, "customers") == {
        "DIRECT_ANALYSIS": ("NOT_READY", ["COLLABORATION_ANALYSIS_RULE_NOT_CONFIGURED"])}
    collaboration_rule(alice, mid, a["id"])
    assert status(bob, collab.id, "customers") == {
        "DIRECT_ANALYSIS": ("NOT_READY", ["RESULT_RECEIVERS_NOT_CONFIGURED"])}
    alice.client.update_configured_table_association_analysis_rule(
        membershipIdentifier=mid, configuredTableAssociationIdentifier=a["id"], analysisRuleType="LIST",
        analysisRulePolicy={"v1": {"list": {"allowedResultReceivers": [bob.id, dave.id]}}})
    [detail] = schema(bob, collab.id, "customers")["schemaStatusDetails"]
    assert detail == {"status": "READY", "analysisRuleType": "LIST", "analysisType": "DIRECT_ANALYSIS"}

    alice.client.delete_member(collaborationIdentifier=collab.id, accountId=dave.id)  # a receiver goes
    [detail] = schema(bob, collab.id, "customers")["schemaStatusDetails"]
    assert (detail["status"], [r["code"] for r in detail["reasons"]]) == ("NOT_READY",
                                                                         ["RESULT_RECEIVERS_NOT_ALLOWED"])
    assert dave.id in detail["reasons"][0]["message"] and bob.id not in detail["reasons"][0]["message"]
    alice.client.delete_configured_table_association_analysis_rule(
        membershipIdentifier=mid, configuredTableAssociationIdentifier=a["id"], analysisRuleType="LIST")
    assert status(bob, collab.id, "customers") == {
        "DIRECT_ANALYSIS": ("NOT_READY", ["COLLABORATION_ANALYSIS_RULE_NOT_CONFIGURED"])}


def test_custom_rule_status_needs_templates_or_providers_of_the_collaboration(account):
    alice, bob, outsider = account(), account(), account()
    collab = collaborate(alice, bob)
    other = collaborate(outsider, alice)
    mid = collab.mid(alice)
    table = create_table(alice)
    a = associate(alice, mid, table["id"])
    table_rule(alice, table["id"], "CUSTOM", custom_policy(allowedAnalyses=[], allowedAnalysisProviders=None))
    collaboration_rule(alice, mid, a["id"], "CUSTOM", allowedResultReceivers=[bob.id])

    def set_table_rule(**body):
        alice.client.update_configured_table_analysis_rule(
            configuredTableIdentifier=table["id"], analysisRuleType="CUSTOM",
            analysisRulePolicy=custom_policy(**body))

    def template(membership_id):
        return (f"arn:aws:cleanrooms:us-east-1:{alice.id}:membership/{membership_id}/analysistemplate/"
                "11111111-2222-3333-4444-555555555555")

    assert status(bob, collab.id, "customers") == {
        "DIRECT_ANALYSIS": ("NOT_READY", ["ANALYSIS_TEMPLATES_NOT_CONFIGURED"])}
    set_table_rule(allowedAnalyses=[template(other.mid(alice))], allowedAnalysisProviders=None)  # another collab's
    assert status(bob, collab.id, "customers")["DIRECT_ANALYSIS"][1] == ["ANALYSIS_TEMPLATES_NOT_CONFIGURED"]
    set_table_rule(allowedAnalyses=[template(other.mid(alice)), template(mid)], allowedAnalysisProviders=None)
    assert status(bob, collab.id, "customers") == {"DIRECT_ANALYSIS": ("READY", [])}

    for providers, ready in (([outsider.id], False), ([bob.id], False), ([outsider.id, alice.id], True)):
        set_table_rule(allowedAnalysisProviders=providers)  # ANY_QUERY: a member who can query must be a provider
        expected = ("READY", []) if ready else ("NOT_READY", ["ANALYSIS_PROVIDERS_NOT_CONFIGURED"])
        assert status(bob, collab.id, "customers") == {"DIRECT_ANALYSIS": expected}, providers

    set_table_rule(allowedAnalysisProviders=[alice.id], allowedResultReceivers=[alice.id])
    assert status(bob, collab.id, "customers") == {
        "DIRECT_ANALYSIS": ("NOT_READY", ["RESULT_RECEIVERS_NOT_ALLOWED"])}  # the table's rule does not allow Bob
    set_table_rule(allowedAnalysisProviders=[alice.id], differentialPrivacy={"columns": [{"name": "user_id"}]})
    [detail] = schema(bob, collab.id, "customers")["schemaStatusDetails"]
    assert detail["configurations"] == ["DIFFERENTIAL_PRIVACY"]  # the collaboration has no privacy budget template
    assert [r["code"] for r in detail["reasons"]] == ["DIFFERENTIAL_PRIVACY_POLICY_NOT_CONFIGURED"]


def test_additional_analysis_status(account):
    alice, bob = account(), account()
    collab = collaborate(alice, bob)
    mid = collab.mid(alice)
    table = create_table(alice)
    a = associate(alice, mid, table["id"])
    table_rule(alice, table["id"], "LIST", list_policy(additionalAnalyses="ALLOWED"))
    not_configured = ("NOT_READY", ["COLLABORATION_ANALYSIS_RULE_NOT_CONFIGURED"])
    assert status(bob, collab.id, "customers") == {"DIRECT_ANALYSIS": not_configured,
                                                   "ADDITIONAL_ANALYSIS": not_configured}
    seed = (f"arn:aws:cleanrooms:us-east-1:{alice.id}:membership/{mid}/configuredaudiencemodelassociation/"
            "11111111-2222-3333-4444-555555555555")
    collaboration_rule(alice, mid, a["id"], allowedResultReceivers=[bob.id])
    assert status(bob, collab.id, "customers") == {
        "DIRECT_ANALYSIS": ("READY", []), "ADDITIONAL_ANALYSIS": ("NOT_READY", ["ADDITIONAL_ANALYSES_NOT_CONFIGURED"])}

    def set_collaboration_rule(**body):
        alice.client.update_configured_table_association_analysis_rule(
            membershipIdentifier=mid, configuredTableAssociationIdentifier=a["id"], analysisRuleType="LIST",
            analysisRulePolicy={"v1": {"list": body}})

    set_collaboration_rule(allowedResultReceivers=[bob.id], allowedAdditionalAnalyses=[seed])
    assert status(bob, collab.id, "customers") == {"DIRECT_ANALYSIS": ("READY", []),
                                                   "ADDITIONAL_ANALYSIS": ("READY", [])}
    alice.client.update_configured_table_analysis_rule(configuredTableIdentifier=table["id"],
                                                       analysisRuleType="LIST", analysisRulePolicy=list_policy())
    assert status(bob, collab.id, "customers") == {  # the table's rule no longer allows them (NOT_ALLOWED default)
        "DIRECT_ANALYSIS": ("READY", []), "ADDITIONAL_ANALYSIS": ("NOT_READY", ["ADDITIONAL_ANALYSES_NOT_ALLOWED"])}
    set_collaboration_rule(allowedResultReceivers=[bob.id])
    assert status(bob, collab.id, "customers") == {"DIRECT_ANALYSIS": ("READY", [])}

    # a CUSTOM table rule may list the additional analyses it allows; the collaboration rule must stay within them
    custom = create_table(alice, name="custom")
    other_seed = seed.replace("11111111", "99999999")
    table_rule(alice, custom["id"], "CUSTOM", custom_policy(allowedAnalysisProviders=[alice.id],
                                                            additionalAnalyses="REQUIRED",
                                                            allowedAdditionalAnalyses=[seed]))
    c = associate(alice, mid, custom["id"], name="custom")
    collaboration_rule(alice, mid, c["id"], "CUSTOM", allowedResultReceivers=[bob.id],
                       allowedAdditionalAnalyses=[seed, other_seed])
    assert status(bob, collab.id, "custom") == {
        "DIRECT_ANALYSIS": ("READY", []), "ADDITIONAL_ANALYSIS": ("NOT_READY", ["ADDITIONAL_ANALYSES_NOT_ALLOWED"])}
    alice.client.update_configured_table_association_analysis_rule(
        membershipIdentifier=mid, configuredTableAssociationIdentifier=c["id"], analysisRuleType="CUSTOM",
        analysisRulePolicy={"v1": {"custom": {"allowedResultReceivers": [bob.id],
                                              "allowedAdditionalAnalyses": [seed]}}})
    assert status(bob, collab.id, "custom") == {"DIRECT_ANALYSIS": ("READY", []),
                                                "ADDITIONAL_ANALYSIS": ("READY", [])}


def test_spark_collaborations_take_only_custom_rules_without_differential_privacy(account):
    alice, bob = account(), account()
    collab = collaborate(alice, bob)
    mid = collab.mid(alice)
    listed, custom = create_table(alice, name="listed"), create_table(alice, name="custom")
    table_rule(alice, listed["id"], "LIST")
    table_rule(alice, custom["id"], "CUSTOM", custom_policy(allowedAnalysisProviders=[alice.id]))
    for t in (listed, custom):
        a = associate(alice, mid, t["id"], name=t["name"])
        collaboration_rule(alice, mid, a["id"], "LIST" if t is listed else "CUSTOM", allowedResultReceivers=[bob.id])
    for name in ("listed", "custom"):
        assert status(bob, collab.id, name) == {"DIRECT_ANALYSIS": ("READY", [])}
    alice.client.update_collaboration(collaborationIdentifier=collab.id, analyticsEngine="SPARK")
    assert status(bob, collab.id, "listed") == {
        "DIRECT_ANALYSIS": ("NOT_READY", ["ANALYSIS_RULE_TYPES_NOT_COMPATIBLE"])}
    assert status(bob, collab.id, "custom") == {"DIRECT_ANALYSIS": ("READY", [])}


# ------------------------------------------------------------------------------------------------ analysis rules


def test_schema_analysis_rule_combines_the_table_and_collaboration_rules(trio):
    alice, bob, carol, collab = trio
    mid = collab.mid(alice)
    table = create_table(alice)
    policy = list_policy(additionalAnalyses="ALLOWED")
    table_rule(alice, table["id"], "LIST", policy)
    associate(alice, mid, table["id"])
    table_only = rule_of(carol, collab.id, "customers", "LIST")
    table_rule_now = alice.client.get_configured_table_analysis_rule(configuredTableIdentifier=table["id"],
                                                                     analysisRuleType="LIST")["analysisRule"]
    assert table_only == {"collaborationId": collab.id, "type": "LIST", "name": "customers",
                          "createTime": table_rule_now["createTime"], "updateTime": table_rule_now["updateTime"],
                          "policy": policy, "consolidatedPolicy": policy}
    for rule_type in ("AGGREGATION", "CUSTOM", "ID_MAPPING_TABLE"):
        response = raises("ResourceNotFoundException", bob.client.get_schema_analysis_rule,
                          collaborationIdentifier=collab.id, name="customers", type=rule_type)
        assert (response["resourceType"], response["resourceId"]) == ("CONFIGURED_TABLE_ASSOCIATION", "customers")
    raises("ResourceNotFoundException", bob.client.get_schema_analysis_rule, collaborationIdentifier=collab.id,
           name="orders", type="LIST")

    time.sleep(0.01)
    a = alice.client.list_configured_table_associations(membershipIdentifier=mid)[
        "configuredTableAssociationSummaries"][0]
    seed = "arn:aws:cleanrooms:us-east-1:*:membership/*/configuredaudiencemodelassociation/*"
    rule = collaboration_rule(alice, mid, a["id"], allowedResultReceivers=[bob.id], allowedAdditionalAnalyses=[seed])
    combined = rule_of(bob, collab.id, "CUSTOMERS", "LIST")
    assert combined["collaborationPolicy"] == rule["policy"] and combined["policy"] == policy
    assert combined["consolidatedPolicy"] == {"v1": {"list": {
        **policy["v1"]["list"], "allowedResultReceivers": [bob.id], "allowedAdditionalAnalyses": [seed]}}}
    assert combined["updateTime"] == rule["updateTime"] > combined["createTime"]

    # a CUSTOM table rule may name receivers itself: only those both rules allow remain
    custom_table = create_table(alice, name="custom")
    table_rule(alice, custom_table["id"], "CUSTOM", custom_policy(allowedAnalysisProviders=[alice.id],
                                                                  allowedResultReceivers=[alice.id, bob.id]))
    c = associate(alice, mid, custom_table["id"], name="custom")
    collaboration_rule(alice, mid, c["id"], "CUSTOM", allowedResultReceivers=[bob.id, carol.id])
    consolidated = rule_of(bob, collab.id, "custom", "CUSTOM")["consolidatedPolicy"]["v1"]["custom"]
    assert consolidated == {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [alice.id],
                            "allowedResultReceivers": [bob.id]}


def test_batch_get_schema(trio):
    alice, bob, carol, collab = trio
    associate(alice, collab.mid(alice), create_table(alice)["id"], name="customers")
    associate(bob, collab.mid(bob), create_table(bob, name="impressions", reference=IMPRESSIONS)["id"],
              name="impressions")
    response = carol.client.batch_get_schema(collaborationIdentifier=collab.id,
                                             names=["IMPRESSIONS", "orders", "customers", "impressions", "Orders"])
    assert [s["name"] for s in response["schemas"]] == ["impressions", "customers"]
    assert response["schemas"][1] == schema(carol, collab.id, "customers")
    assert [(e["name"], e["code"]) for e in response["errors"]] == [("orders", "ResourceNotFoundException")]
    assert "orders" in response["errors"][0]["message"]
    response = carol.client.batch_get_schema(collaborationIdentifier=collab.id, names=["nothing"])
    assert response["schemas"] == [] and len(response["errors"]) == 1
    response = raises("ValidationException", carol.client.batch_get_schema, collaborationIdentifier=collab.id,
                      names=[f"t{i}" for i in range(26)])
    assert field_names(response) == ["names"]


def test_batch_get_schema_analysis_rule(trio):
    alice, bob, carol, collab = trio
    table = create_table(alice)
    table_rule(alice, table["id"], "AGGREGATION")
    associate(alice, collab.mid(alice), table["id"], name="customers")
    associate(bob, collab.mid(bob), create_table(bob, name="impressions", reference=IMPRESSIONS)["id"],
              name="impressions")
    requests = [{"name": "Customers", "type": "AGGREGATION"}, {"name": "customers", "type": "LIST"},
                {"name": "impressions", "type": "CUSTOM"}, {"name": "orders", "type": "LIST"},
                {"name": "customers", "type": "AGGREGATION"}]
    response = carol.client.batch_get_schema_analysis_rule(collaborationIdentifier=collab.id,
                                                           schemaAnalysisRuleRequests=requests)
    assert response["analysisRules"] == [rule_of(carol, collab.id, "customers", "AGGREGATION")]
    assert [(e["name"], e["type"], e["code"]) for e in response["errors"]] == [
        ("customers", "LIST", "ResourceNotFoundException"), ("impressions", "CUSTOM", "ResourceNotFoundException"),
        ("orders", "LIST", "ResourceNotFoundException")]
    raises("ValidationException", carol.client.batch_get_schema_analysis_rule, collaborationIdentifier=collab.id,
           schemaAnalysisRuleRequests=[{"name": f"t{i}", "type": "LIST"} for i in range(26)])


# ------------------------------------------------------------------------------------------------ lists


def test_list_schemas_pages_and_filters(account, trio):
    alice, bob, carol, collab = trio
    created = []
    for i in range(5):
        p = (alice, bob)[i % 2]
        created.append(associate(p, collab.mid(p), create_table(p, name=f"t{i}", columns=["user_id"])["id"],
                                 name=f"t{i}")["name"])
    names = list(reversed(created))  # newest first
    assert [s["name"] for s in schema_list(carol, collab.id, PaginationConfig={"PageSize": 2})] == names
    first = carol.client.list_schemas(collaborationIdentifier=collab.id, schemaType="TABLE", maxResults=2)
    assert [s["name"] for s in first["schemaSummaries"]] == names[:2]
    rest = carol.client.list_schemas(collaborationIdentifier=collab.id, schemaType="TABLE",
                                     nextToken=first["nextToken"])
    assert [s["name"] for s in rest["schemaSummaries"]] == names[2:] and "nextToken" not in rest
    for schema_type in ("ID_MAPPING_TABLE", "INTERMEDIATE_TABLE"):
        assert carol.client.list_schemas(collaborationIdentifier=collab.id, schemaType=schema_type)[
            "schemaSummaries"] == []
    other = collaborate(carol, account())
    for client, params in ((carol.client, {"collaborationIdentifier": collab.id}),  # without the filter
                           (carol.client, {"collaborationIdentifier": other.id, "schemaType": "TABLE"}),
                           (bob.client, {"collaborationIdentifier": collab.id, "schemaType": "TABLE"})):
        response = raises("ValidationException", client.list_schemas, nextToken=first["nextToken"], **params)
        assert field_names(response) == ["nextToken"]
    assert schema_list(carol, other.id) == []


# ------------------------------------------------------------------------------------------------ other accounts


def _schema_calls(client, collaboration_id):
    return [
        ("GetSchema", client.get_schema, {"collaborationIdentifier": collaboration_id, "name": "customers"}),
        ("ListSchemas", client.list_schemas, {"collaborationIdentifier": collaboration_id}),
        ("BatchGetSchema", client.batch_get_schema, {"collaborationIdentifier": collaboration_id,
                                                     "names": ["customers"]}),
        ("GetSchemaAnalysisRule", client.get_schema_analysis_rule,
         {"collaborationIdentifier": collaboration_id, "name": "customers", "type": "LIST"}),
        ("BatchGetSchemaAnalysisRule", client.batch_get_schema_analysis_rule,
         {"collaborationIdentifier": collaboration_id,
          "schemaAnalysisRuleRequests": [{"name": "customers", "type": "LIST"}]}),
    ]


def test_only_invited_and_active_members_read_schemas(account):
    alice, bob, removed, leaver, outsider, stranger = (account() for _ in range(6))
    collab = collaborate(alice, bob, removed, leaver)
    collaborate(outsider, account())  # the outsider is active in a collaboration of its own
    table = create_table(alice)
    table_rule(alice, table["id"], "LIST")
    associate(alice, collab.mid(alice), table["id"])
    alice.client.delete_member(collaborationIdentifier=collab.id, accountId=removed.id)
    leaver.client.delete_membership(membershipIdentifier=collab.mid(leaver))
    for p in (removed, leaver, outsider, stranger):
        for (name, call, params), (_, unknown_call, unknown_params) in zip(
                _schema_calls(p.client, collab.id), _schema_calls(p.client, UNKNOWN_ID)):
            foreign = raises("AccessDeniedException", call, **params)
            unknown = raises("AccessDeniedException", unknown_call, **unknown_params)
            assert foreign["Error"]["Message"].replace(collab.id, "X") == \
                unknown["Error"]["Message"].replace(UNKNOWN_ID, "X"), name
    for name, call, params in _schema_calls(bob.client, collab.id):  # a member reads them all
        call(**params)
