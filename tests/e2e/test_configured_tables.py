"""Configured tables and their analysis rules over HTTP, with several accounts and real catalog tables.

Every account registers the sample tables shipped in `opencleanrooms/samples/` in its own catalog (through the
catalog's management functions, and once through the real `opencleanrooms catalog add` command). Responses are
checked against the model by the clients' conformance hook.
"""

from __future__ import annotations

import subprocess
import sys
import time
from importlib import resources

import boto3
import pytest

from opencleanrooms.catalog import commands as catalog_commands
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import configured_tables as service
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import PageTokens
from opencleanrooms.services.quotas import Quotas
from opencleanrooms.storage import configured_tables as table_store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import Database
from tests.support.backend import database_url
from tests.support.builders import all_pages, raises
from tests.support.moto import MotoS3
from tests.support.server import ServerProcess

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
SAMPLES = resources.files("opencleanrooms.samples")
CUSTOMERS = str(SAMPLES.joinpath("customers.parquet"))
IMPRESSIONS = str(SAMPLES.joinpath("impressions.csv"))
CUSTOMER_COLUMNS = ["user_id", "email_hash", "segment", "age_band", "signup_date", "lifetime_value"]
ALLOWED = ["user_id", "segment", "age_band", "lifetime_value", "email_hash"]  # signup_date is kept out
GLUE = {"glue": {"databaseName": "advertiser", "tableName": "customers"}}
TEMPLATE_ARN = ("arn:aws:cleanrooms:us-east-1:111122223333:membership/41327cc4-bbf0-43f1-b70c-a160dddceb08/"
                "analysistemplate/1ff1bf9d-781c-418d-a6ac-2b80c09d6292")
SNOWFLAKE = {"snowflake": {
    "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:snowflake-AbCdEf",
    "accountIdentifier": "xy12345.us-east-1", "databaseName": "SALES", "schemaName": "PUBLIC",
    "tableName": "ORDERS", "tableSchema": {"v1": [{"columnName": "order_id", "columnType": "VARCHAR"},
                                                  {"columnName": "amount", "columnType": "NUMBER"}]}}}
ATHENA = {"athena": {"workGroup": "primary", "databaseName": "sales", "tableName": "orders",
                     "outputLocation": "s3://athena-results/out/", "catalogName": "AwsDataCatalog",
                     "region": "us-west-2"}}


def aggregation(**changes) -> dict:
    body = {
        "aggregateColumns": [{"columnNames": ["lifetime_value"], "function": "SUM"},
                             {"columnNames": ["user_id"], "function": "COUNT_DISTINCT"}],
        "joinColumns": ["user_id"],
        "joinRequired": "QUERY_RUNNER",
        "allowedJoinOperators": ["AND"],
        "dimensionColumns": ["segment", "age_band"],
        "scalarFunctions": ["ROUND", "TRUNC"],
        "outputConstraints": [{"columnName": "user_id", "minimum": 10, "type": "COUNT_DISTINCT"}],
    }
    body.update(changes)
    return {"v1": {"aggregation": body}}


def listing(**changes) -> dict:
    body = {"joinColumns": ["user_id"], "listColumns": ["segment", "age_band"], "additionalAnalyses": "ALLOWED"}
    body.update(changes)
    return {"v1": {"list": body}}


def custom(**changes) -> dict:
    body = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": ["444455556666"],
            "disallowedOutputColumns": ["email_hash"], "differentialPrivacy": {"columns": [{"name": "user_id"}]}}
    body.update(changes)
    return {"v1": {"custom": body}}


POLICIES = {"AGGREGATION": aggregation, "LIST": listing, "CUSTOM": custom}


def register(server, party, database="advertiser", table="customers", location=CUSTOMERS, **options):
    catalog_commands.add_table(server.db, account_id=party.id, database=database, table=table, location=location,
                               **options)


@pytest.fixture
def owner(server, party):
    """An account whose catalog holds both sample tables."""
    p = party()
    register(server, p)
    register(server, p, "publisher", "impressions", IMPRESSIONS)
    return p


def create_table(p, **overrides) -> dict:
    request = {"name": "customers", "tableReference": GLUE, "allowedColumns": list(ALLOWED),
               "analysisMethod": "DIRECT_QUERY"}
    request.update(overrides)
    return p.client.create_configured_table(**request)["configuredTable"]


def create_rule(p, table_id, rule_type="LIST", policy=None) -> dict:
    return p.client.create_configured_table_analysis_rule(
        configuredTableIdentifier=table_id, analysisRuleType=rule_type,
        analysisRulePolicy=policy or POLICIES[rule_type]())["analysisRule"]


def get_table(p, table_id) -> dict:
    return p.client.get_configured_table(configuredTableIdentifier=table_id)["configuredTable"]


def field_names(response) -> list[str]:
    return [f["name"] for f in response.get("fieldList") or []]


# ------------------------------------------------------------------------------------------------ tables


def test_create_get_and_list_a_glue_table(owner):
    t = create_table(owner, description="advertiser customers\nline two", tags={"env": "test"})
    assert t["arn"] == f"arn:aws:cleanrooms:us-east-1:{owner.id}:configuredtable/{t['id']}"
    assert (t["name"], t["description"], t["tableReference"]) == ("customers", "advertiser customers\nline two",
                                                                  GLUE)
    assert t["allowedColumns"] == ALLOWED and t["analysisMethod"] == "DIRECT_QUERY"
    assert t["analysisRuleTypes"] == [] and "selectedAnalysisMethods" not in t
    assert t["createTime"] == t["updateTime"]
    assert get_table(owner, t["id"]) == t
    summaries = owner.client.list_configured_tables()["configuredTableSummaries"]
    assert summaries == [{key: t[key] for key in ("id", "arn", "name", "createTime", "updateTime",
                                                  "analysisRuleTypes", "analysisMethod")}]
    assert owner.client.list_tags_for_resource(resourceArn=t["arn"])["tags"] == {"env": "test"}


def test_catalog_entries_made_with_the_cli_are_seen_and_names_ignore_case(server, party):
    p = party()
    added = subprocess.run(
        [sys.executable, "-m", "opencleanrooms", "catalog", "add", *server.storage_args,
         "--account-id", p.id, "--database", "publisher", "--table", "impressions", "--location", IMPRESSIONS],
        capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    reference = {"glue": {"databaseName": "Publisher", "tableName": "IMPRESSIONS"}}
    t = create_table(p, name="impressions", tableReference=reference,
                     allowedColumns=["user_id", "campaign_id", "impression_time", "clicks", "spend"])
    assert t["tableReference"] == reference  # stored as given
    assert get_table(p, t["id"])["allowedColumns"] == ["user_id", "campaign_id", "impression_time", "clicks",
                                                       "spend"]


def test_glue_reference_must_resolve_in_the_callers_own_catalog(server, party, owner):
    stranger = party()
    for p, reference in ((owner, {"glue": {"databaseName": "advertiser", "tableName": "absent"}}),
                         (owner, {"glue": {"databaseName": "absent", "tableName": "customers"}}),
                         (stranger, GLUE)):  # the owner's catalog table is not the stranger's
        response = raises("ValidationException", create_table, p, tableReference=reference)
        glue = reference["glue"]
        assert response["Error"]["Message"].startswith(
            f"Table {glue['databaseName']}.{glue['tableName']} not found in the catalog of account {p.id}")
        assert field_names(response) == ["tableReference.glue"]
    assert stranger.client.list_configured_tables()["configuredTableSummaries"] == []
    assert owner.client.list_configured_tables()["configuredTableSummaries"] == []


def test_glue_region_selects_the_catalog_entry(server, party):
    p = party()
    register(server, p, "eu", "customers", region="eu-west-1")
    reference = {"glue": {"databaseName": "eu", "tableName": "customers"}}
    raises("ValidationException", create_table, p, tableReference=reference)  # resolved in us-east-1: absent
    regional = {"glue": {"databaseName": "eu", "tableName": "customers", "region": "eu-west-1"}}
    assert create_table(p, tableReference=regional)["tableReference"] == regional


def test_unreadable_catalog_table_is_a_validation_error(server, party, tmp_path):
    p = party()
    register(server, p, "advertiser", "gone", str(tmp_path / "missing.parquet"))
    response = raises("ValidationException", create_table, p,
                      tableReference={"glue": {"databaseName": "advertiser", "tableName": "gone"}})
    message = response["Error"]["Message"]
    assert message.startswith("Table advertiser.gone cannot be read:")
    assert str(tmp_path) not in message and "missing.parquet" not in message  # server paths stay in the log
    request_id = response["ResponseMetadata"]["RequestId"]
    assert request_id in message
    logged = [line for line in server.log_tail(500_000).splitlines() if f"request {request_id}:" in line]
    assert len(logged) == 1 and str(tmp_path / "missing.parquet") in logged[0]


def test_allowed_columns_must_be_distinct_columns_of_the_data(server, owner):
    response = raises("ValidationException", create_table, owner,
                      allowedColumns=["user_id", "postcode", "segment", "income"])
    assert "postcode, income" in response["Error"]["Message"]
    assert field_names(response) == ["allowedColumns"]
    response = raises("ValidationException", create_table, owner, allowedColumns=["user_id", "segment", "user_id"])
    assert "user_id" in response["Error"]["Message"] and field_names(response) == ["allowedColumns"]
    unchecked = server.client(owner.account, parameter_validation=False)
    response = raises("ValidationException", unchecked.create_configured_table, name="n", tableReference=GLUE,
                      allowedColumns=["User_Id"], analysisMethod="DIRECT_QUERY")
    assert response["reason"] == "FIELD_VALIDATION_FAILED"  # the model's lowercase column name pattern
    t = create_table(owner, allowedColumns=list(CUSTOMER_COLUMNS))  # every column of the data
    assert t["allowedColumns"] == CUSTOMER_COLUMNS
    assert len(owner.client.list_configured_tables()["configuredTableSummaries"]) == 1


def test_allowed_columns_quota_is_100_by_default(owner):
    response = raises("ServiceQuotaExceededException", create_table, owner,
                      allowedColumns=[f"c{i}" for i in range(101)])
    assert (response["quotaName"], response["quotaValue"]) == ("Columns per configured table allowlist", 100.0)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 402
    response = raises("ValidationException", create_table, owner, allowedColumns=[f"c{i}" for i in range(100)])
    assert "c0, c1" in response["Error"]["Message"]  # within the quota: the columns are checked instead


def test_selected_analysis_methods(owner):
    both = ["DIRECT_QUERY", "DIRECT_JOB"]
    t = create_table(owner, analysisMethod="MULTIPLE", selectedAnalysisMethods=both)
    assert t["selectedAnalysisMethods"] == both and get_table(owner, t["id"])["selectedAnalysisMethods"] == both
    [summary] = owner.client.list_configured_tables()["configuredTableSummaries"]
    assert summary["selectedAnalysisMethods"] == both and summary["analysisMethod"] == "MULTIPLE"
    assert "selectedAnalysisMethods" not in create_table(owner, analysisMethod="MULTIPLE")
    for method, selected in (("MULTIPLE", ["DIRECT_QUERY"]), ("MULTIPLE", []),
                             ("MULTIPLE", ["DIRECT_JOB", "DIRECT_JOB"]), ("DIRECT_QUERY", both),
                             ("DIRECT_JOB", both)):
        response = raises("ValidationException", create_table, owner, analysisMethod=method,
                          selectedAnalysisMethods=selected)
        assert field_names(response) == ["selectedAnalysisMethods"], (method, selected)
    assert len(owner.client.list_configured_tables()["configuredTableSummaries"]) == 2


def test_snowflake_and_athena_references_are_stored_as_given(party):
    p = party()  # nothing in its catalog: these references are not read
    snowflake = create_table(p, name="orders", tableReference=SNOWFLAKE, allowedColumns=["order_id", "amount"])
    assert snowflake["tableReference"] == SNOWFLAKE
    response = raises("ValidationException", create_table, p, tableReference=SNOWFLAKE,
                      allowedColumns=["order_id", "customer"])
    assert "customer" in response["Error"]["Message"] and field_names(response) == ["allowedColumns"]
    athena = create_table(p, name="orders", tableReference=ATHENA, allowedColumns=["order_id", "amount"])
    assert get_table(p, athena["id"])["tableReference"] == ATHENA
    for table in (snowflake, athena):  # non-S3 sources support only custom rules, without differential privacy
        for rule_type, member in (("AGGREGATION", "aggregation"), ("LIST", "list")):
            response = raises("ValidationException", create_rule, p, table["id"], rule_type,
                              {"v1": {member: _non_s3_body(rule_type)}})
            assert response["reason"] == "INVALID_CONFIGURATION"
            assert "support only CUSTOM" in response["Error"]["Message"]
        response = raises("ValidationException", create_rule, p, table["id"], "CUSTOM",
                          custom(disallowedOutputColumns=[], differentialPrivacy={"columns": [{"name": "order_id"}]}))
        assert field_names(response) == ["analysisRulePolicy.v1.custom.differentialPrivacy"]
        rule = create_rule(p, table["id"], "CUSTOM", _without_nones(custom(disallowedOutputColumns=["amount"],
                                                                           differentialPrivacy=None)))
        assert rule["type"] == "CUSTOM"
        assert get_table(p, table["id"])["analysisRuleTypes"] == ["CUSTOM"]


def _non_s3_body(rule_type: str) -> dict:
    if rule_type == "LIST":
        return {"joinColumns": ["order_id"], "listColumns": ["amount"]}
    return {"aggregateColumns": [{"columnNames": ["amount"], "function": "SUM"}], "joinColumns": ["order_id"],
            "dimensionColumns": [], "scalarFunctions": [],
            "outputConstraints": [{"columnName": "order_id", "minimum": 2, "type": "COUNT_DISTINCT"}]}


def test_update_configured_table(owner):
    t = create_table(owner, description="before", analysisMethod="MULTIPLE",
                     selectedAnalysisMethods=["DIRECT_QUERY", "DIRECT_JOB"])
    time.sleep(0.01)
    updated = owner.client.update_configured_table(configuredTableIdentifier=t["id"], name="renamed",
                                                   description="after")["configuredTable"]
    assert (updated["name"], updated["description"], updated["allowedColumns"]) == ("renamed", "after", ALLOWED)
    assert updated["createTime"] == t["createTime"] and updated["updateTime"] > t["updateTime"]
    assert get_table(owner, t["id"]) == updated

    response = raises("ValidationException", owner.client.update_configured_table,
                      configuredTableIdentifier=t["id"], allowedColumns=["user_id", "nope"])
    assert "nope" in response["Error"]["Message"]
    assert get_table(owner, t["id"]) == updated  # unchanged

    impressions = {"glue": {"databaseName": "publisher", "tableName": "impressions"}}
    raises("ValidationException", owner.client.update_configured_table, configuredTableIdentifier=t["id"],
           tableReference=impressions)  # the customers columns are not the impressions columns
    moved = owner.client.update_configured_table(configuredTableIdentifier=t["id"], tableReference=impressions,
                                                 allowedColumns=["user_id", "clicks"])["configuredTable"]
    assert (moved["tableReference"], moved["allowedColumns"]) == (impressions, ["user_id", "clicks"])

    single = owner.client.update_configured_table(configuredTableIdentifier=t["id"],
                                                  analysisMethod="DIRECT_QUERY")["configuredTable"]
    assert single["analysisMethod"] == "DIRECT_QUERY" and "selectedAnalysisMethods" not in single
    raises("ValidationException", owner.client.update_configured_table, configuredTableIdentifier=t["id"],
           selectedAnalysisMethods=["DIRECT_QUERY", "DIRECT_JOB"])  # not with DIRECT_QUERY
    both = owner.client.update_configured_table(configuredTableIdentifier=t["id"], analysisMethod="MULTIPLE",
                                                selectedAnalysisMethods=["DIRECT_JOB", "DIRECT_QUERY"])
    assert both["configuredTable"]["selectedAnalysisMethods"] == ["DIRECT_JOB", "DIRECT_QUERY"]
    [summary] = owner.client.list_configured_tables()["configuredTableSummaries"]
    assert (summary["name"], summary["analysisMethod"]) == ("renamed", "MULTIPLE")
    assert summary["updateTime"] == both["configuredTable"]["updateTime"]
    unchanged = owner.client.update_configured_table(configuredTableIdentifier=t["id"])["configuredTable"]
    assert {k: v for k, v in unchanged.items() if k != "updateTime"} == \
        {k: v for k, v in both["configuredTable"].items() if k != "updateTime"}


def test_update_keeps_the_columns_and_source_the_rule_needs(owner):
    t = create_table(owner)
    create_rule(owner, t["id"], "LIST")  # joins on user_id, lists segment and age_band
    response = raises("ValidationException", owner.client.update_configured_table,
                      configuredTableIdentifier=t["id"], allowedColumns=["user_id", "lifetime_value"])
    assert response["reason"] == "INVALID_CONFIGURATION" and field_names(response) == ["allowedColumns"]
    assert "age_band, segment" in response["Error"]["Message"]
    snowflake = {"snowflake": dict(SNOWFLAKE["snowflake"], tableSchema={"v1": [
        {"columnName": c, "columnType": "VARCHAR"} for c in ALLOWED]})}
    response = raises("ValidationException", owner.client.update_configured_table,
                      configuredTableIdentifier=t["id"], tableReference=snowflake)
    assert response["reason"] == "INVALID_CONFIGURATION" and field_names(response) == ["tableReference"]
    assert (get_table(owner, t["id"])["tableReference"], get_table(owner, t["id"])["allowedColumns"]) == (
        GLUE, ALLOWED)
    narrowed = owner.client.update_configured_table(configuredTableIdentifier=t["id"],
                                                    allowedColumns=["user_id", "segment", "age_band"])
    assert narrowed["configuredTable"]["allowedColumns"] == ["user_id", "segment", "age_band"]
    owner.client.delete_configured_table_analysis_rule(configuredTableIdentifier=t["id"], analysisRuleType="LIST")
    assert owner.client.update_configured_table(configuredTableIdentifier=t["id"], allowedColumns=["user_id"]) \
        ["configuredTable"]["allowedColumns"] == ["user_id"]
    create_rule(owner, t["id"], "CUSTOM", custom(disallowedOutputColumns=[]))  # with differential privacy
    response = raises("ValidationException", owner.client.update_configured_table,
                      configuredTableIdentifier=t["id"], tableReference=snowflake)
    assert field_names(response) == ["tableReference"] and "differential privacy" in response["Error"]["Message"]
    owner.client.update_configured_table_analysis_rule(
        configuredTableIdentifier=t["id"], analysisRuleType="CUSTOM",
        analysisRulePolicy=_without_nones(custom(disallowedOutputColumns=[], differentialPrivacy=None)))
    moved = owner.client.update_configured_table(configuredTableIdentifier=t["id"], tableReference=snowflake)
    assert moved["configuredTable"]["tableReference"] == snowflake


def test_delete_configured_table_removes_its_rule_and_tags(server, owner):
    t = create_table(owner, tags={"k": "v"})
    keep = create_table(owner, name="keep")
    create_rule(owner, t["id"], "AGGREGATION")
    response = owner.client.delete_configured_table(configuredTableIdentifier=t["id"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    response = raises("ResourceNotFoundException", owner.client.get_configured_table,
                      configuredTableIdentifier=t["id"])
    assert (response["resourceId"], response["resourceType"]) == (t["id"], "CONFIGURED_TABLE")
    raises("ResourceNotFoundException", owner.client.get_configured_table_analysis_rule,
           configuredTableIdentifier=t["id"], analysisRuleType="AGGREGATION")
    raises("ResourceNotFoundException", owner.client.list_tags_for_resource, resourceArn=t["arn"])
    with server.db.read() as conn:  # gone from storage too, not only hidden
        assert tag_store.get(conn, t["arn"]) == {}
        assert table_store.get_rule(conn, t["id"]) is None
    raises("ResourceNotFoundException", owner.client.delete_configured_table, configuredTableIdentifier=t["id"])
    assert [s["id"] for s in owner.client.list_configured_tables()["configuredTableSummaries"]] == [keep["id"]]
    again = create_table(owner)
    assert again["id"] != t["id"] and owner.client.list_tags_for_resource(resourceArn=again["arn"])["tags"] == {}


def test_list_pages_newest_first(server, owner, party):
    created = [create_table(owner, name=f"t{i:03d}", allowedColumns=["user_id"]) for i in range(105)]
    newest_first = [t["id"] for t in reversed(created)]
    first = owner.client.list_configured_tables()
    assert len(first["configuredTableSummaries"]) == 100 and first["nextToken"]  # the default page size
    pages, token = [], None
    while True:
        page = owner.client.list_configured_tables(maxResults=40, **({"nextToken": token} if token else {}))
        pages.append([s["id"] for s in page["configuredTableSummaries"]])
        token = page.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [40, 40, 25]
    assert sum(pages, []) == newest_first
    assert [s["id"] for s in all_pages(owner.client, "list_configured_tables", "configuredTableSummaries",
                                       PaginationConfig={"PageSize": 7})] == newest_first
    other = party()
    response = raises("ValidationException", other.client.list_configured_tables, nextToken=first["nextToken"])
    assert field_names(response) == ["nextToken"]
    raises("ValidationException", owner.client.list_memberships, nextToken=first["nextToken"])
    assert other.client.list_configured_tables()["configuredTableSummaries"] == []


# ------------------------------------------------------------------------------------------------ analysis rules


@pytest.mark.parametrize("rule_type", ["AGGREGATION", "LIST", "CUSTOM"])
def test_analysis_rule_lifecycle(owner, rule_type):
    t = create_table(owner)
    policy = POLICIES[rule_type]()
    rule = create_rule(owner, t["id"], rule_type, policy)
    assert rule == {"configuredTableId": t["id"], "configuredTableArn": t["arn"], "policy": policy,
                    "type": rule_type, "createTime": rule["createTime"], "updateTime": rule["createTime"]}
    assert get_table(owner, t["id"])["analysisRuleTypes"] == [rule_type]
    assert get_table(owner, t["id"])["updateTime"] == t["updateTime"]
    [summary] = owner.client.list_configured_tables()["configuredTableSummaries"]
    assert summary["analysisRuleTypes"] == [rule_type]
    assert owner.client.get_configured_table_analysis_rule(
        configuredTableIdentifier=t["id"], analysisRuleType=rule_type)["analysisRule"] == rule

    for other_type in POLICIES:  # one rule per table, whatever its type
        response = raises("ConflictException", create_rule, owner, t["id"], other_type)
        assert (response["reason"], response["resourceId"], response["resourceType"]) == (
            "ALREADY_EXISTS", t["id"], "CONFIGURED_TABLE")
    for other_type in set(POLICIES) - {rule_type}:
        response = raises("ResourceNotFoundException", owner.client.get_configured_table_analysis_rule,
                          configuredTableIdentifier=t["id"], analysisRuleType=other_type)
        assert (response["resourceId"], response["resourceType"]) == (t["id"], "CONFIGURED_TABLE")
        raises("ResourceNotFoundException", owner.client.update_configured_table_analysis_rule,
               configuredTableIdentifier=t["id"], analysisRuleType=other_type,
               analysisRulePolicy=POLICIES[other_type]())
        raises("ResourceNotFoundException", owner.client.delete_configured_table_analysis_rule,
               configuredTableIdentifier=t["id"], analysisRuleType=other_type)

    time.sleep(0.01)
    replacement = {"AGGREGATION": aggregation(dimensionColumns=["segment"], joinRequired=None),
                   "LIST": listing(listColumns=[], additionalAnalyses=None),
                   "CUSTOM": custom(allowedAnalyses=[TEMPLATE_ARN], allowedAnalysisProviders=None)}[rule_type]
    replacement = _without_nones(replacement)
    updated = owner.client.update_configured_table_analysis_rule(
        configuredTableIdentifier=t["id"], analysisRuleType=rule_type,
        analysisRulePolicy=replacement)["analysisRule"]
    assert updated["policy"] == replacement and updated["createTime"] == rule["createTime"]
    assert updated["updateTime"] > rule["updateTime"]
    assert owner.client.get_configured_table_analysis_rule(
        configuredTableIdentifier=t["id"], analysisRuleType=rule_type)["analysisRule"] == updated

    response = owner.client.delete_configured_table_analysis_rule(configuredTableIdentifier=t["id"],
                                                                  analysisRuleType=rule_type)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    raises("ResourceNotFoundException", owner.client.get_configured_table_analysis_rule,
           configuredTableIdentifier=t["id"], analysisRuleType=rule_type)
    raises("ResourceNotFoundException", owner.client.delete_configured_table_analysis_rule,
           configuredTableIdentifier=t["id"], analysisRuleType=rule_type)
    assert get_table(owner, t["id"])["analysisRuleTypes"] == []
    assert owner.client.list_configured_tables()["configuredTableSummaries"][0]["analysisRuleTypes"] == []
    other_type = "LIST" if rule_type != "LIST" else "CUSTOM"
    create_rule(owner, t["id"], other_type)  # a new rule, of another type, once the old one is gone
    assert get_table(owner, t["id"])["analysisRuleTypes"] == [other_type]


def _without_nones(policy: dict) -> dict:
    (member, body), = policy["v1"].items()
    return {"v1": {member: {k: v for k, v in body.items() if v is not None}}}


def test_rule_type_must_match_the_policy(owner):
    t = create_table(owner)
    response = raises("ValidationException", create_rule, owner, t["id"], "AGGREGATION", listing())
    assert field_names(response) == ["analysisRulePolicy.v1"]
    assert "v1.aggregation" in response["Error"]["Message"]
    create_rule(owner, t["id"], "LIST")
    raises("ValidationException", owner.client.update_configured_table_analysis_rule,
           configuredTableIdentifier=t["id"], analysisRuleType="LIST", analysisRulePolicy=custom())
    assert get_table(owner, t["id"])["analysisRuleTypes"] == ["LIST"]


@pytest.mark.parametrize("rule_type, policy, field", [
    ("AGGREGATION", aggregation(aggregateColumns=[{"columnNames": ["signup_date"], "function": "COUNT"}]),
     "analysisRulePolicy.v1.aggregation.aggregateColumns.1.member.columnNames"),
    ("AGGREGATION", aggregation(joinColumns=["signup_date"]), "analysisRulePolicy.v1.aggregation.joinColumns"),
    ("AGGREGATION", aggregation(dimensionColumns=["signup_date"]),
     "analysisRulePolicy.v1.aggregation.dimensionColumns"),
    ("AGGREGATION", aggregation(outputConstraints=[{"columnName": "signup_date", "minimum": 2,
                                                    "type": "COUNT_DISTINCT"}]),
     "analysisRulePolicy.v1.aggregation.outputConstraints.1.member.columnName"),
    ("LIST", listing(joinColumns=["signup_date"]), "analysisRulePolicy.v1.list.joinColumns"),
    ("LIST", listing(listColumns=["segment", "signup_date"]), "analysisRulePolicy.v1.list.listColumns"),
    ("CUSTOM", custom(disallowedOutputColumns=["signup_date"]),
     "analysisRulePolicy.v1.custom.disallowedOutputColumns"),
    ("CUSTOM", custom(differentialPrivacy={"columns": [{"name": "signup_date"}]}),
     "analysisRulePolicy.v1.custom.differentialPrivacy.columns.1.member.name"),
])
def test_rule_columns_must_be_allowed_columns(owner, rule_type, policy, field):
    t = create_table(owner)  # signup_date is a column of the data, but not an allowed column
    response = raises("ValidationException", create_rule, owner, t["id"], rule_type, policy)
    assert response["reason"] == "INVALID_CONFIGURATION" and field_names(response) == [field]
    assert "signup_date" in response["Error"]["Message"]
    create_rule(owner, t["id"], rule_type)
    raises("ValidationException", owner.client.update_configured_table_analysis_rule,
           configuredTableIdentifier=t["id"], analysisRuleType=rule_type, analysisRulePolicy=policy)
    stored = owner.client.get_configured_table_analysis_rule(configuredTableIdentifier=t["id"],
                                                             analysisRuleType=rule_type)["analysisRule"]
    assert stored["policy"] == POLICIES[rule_type]()


def test_aggregation_rule_semantics(owner):
    t = create_table(owner)
    path = "analysisRulePolicy.v1.aggregation."
    for policy, field in (
        (aggregation(dimensionColumns=["segment", "lifetime_value"]), "dimensionColumns"),  # an aggregate column
        (aggregation(dimensionColumns=["user_id"]), "dimensionColumns"),  # a join column
        (aggregation(joinColumns=[]), "joinColumns"),  # joinRequired QUERY_RUNNER needs a join column
        (aggregation(additionalAnalyses="ALLOWED"), "additionalAnalyses"),
        (aggregation(additionalAnalyses="REQUIRED"), "additionalAnalyses"),
        (aggregation(scalarFunctions=["ROUND", "ROUND"]), "scalarFunctions"),
        (aggregation(dimensionColumns=["segment", "segment"]), "dimensionColumns"),
    ):
        response = raises("ValidationException", create_rule, owner, t["id"], "AGGREGATION", policy)
        assert field_names(response) == [path + field], policy
    assert get_table(owner, t["id"])["analysisRuleTypes"] == []
    # join columns may also be aggregated; no join columns are fine when no join is required
    accepted = aggregation(joinColumns=[], joinRequired=None, additionalAnalyses="NOT_ALLOWED",
                           aggregateColumns=[{"columnNames": ["user_id", "lifetime_value"], "function": "AVG"}])
    accepted = _without_nones(accepted)
    assert create_rule(owner, t["id"], "AGGREGATION", accepted)["policy"] == accepted


def test_custom_rule_semantics(owner):
    t = create_table(owner)
    path = "analysisRulePolicy.v1.custom."
    for policy, field in (
        (custom(allowedAnalyses=["ANY_QUERY", TEMPLATE_ARN]), "allowedAnalyses"),
        (custom(allowedAnalysisProviders=None), "allowedAnalysisProviders"),
        (custom(allowedAnalyses=["ANY_JOB"], allowedAnalysisProviders=[]), "allowedAnalysisProviders"),
        (custom(allowedAnalyses=[TEMPLATE_ARN]), "allowedAnalysisProviders"),
        (custom(allowedAnalyses=[TEMPLATE_ARN, TEMPLATE_ARN], allowedAnalysisProviders=None), "allowedAnalyses"),
    ):
        response = raises("ValidationException", create_rule, owner, t["id"], "CUSTOM", _without_nones(policy))
        assert response["reason"] in ("INVALID_CONFIGURATION", "FIELD_VALIDATION_FAILED")
        assert field_names(response) == [path + field], policy
    empty = {"v1": {"custom": {"allowedAnalyses": []}}}  # nobody may query yet
    assert create_rule(owner, t["id"], "CUSTOM", empty)["policy"] == empty
    both = custom(allowedAnalyses=["ANY_QUERY", "ANY_JOB"], allowedResultReceivers=["444455556666"])
    assert owner.client.update_configured_table_analysis_rule(
        configuredTableIdentifier=t["id"], analysisRuleType="CUSTOM", analysisRulePolicy=both)["analysisRule"][
        "policy"] == both


def test_analysis_rule_size_is_limited(owner):
    t = create_table(owner)
    arns = [TEMPLATE_ARN.replace("1ff1bf9d-781c-418d-a6ac-2b80c09d6292", f"t{i:06d}") for i in range(900)]  # ~117 KB
    big = {"v1": {"custom": {"allowedAnalyses": arns}}}
    response = raises("ServiceQuotaExceededException", create_rule, owner, t["id"], "CUSTOM", big)
    assert response["quotaValue"] == 100.0
    create_rule(owner, t["id"], "CUSTOM", {"v1": {"custom": {"allowedAnalyses": arns[:300]}}})
    raises("ValidationException", owner.client.update_configured_table_analysis_rule,
           configuredTableIdentifier=t["id"], analysisRuleType="CUSTOM", analysisRulePolicy=big)


# ------------------------------------------------------------------------------------------------ other accounts


def test_other_accounts_see_and_change_nothing(server, owner, party):
    t = create_table(owner, tags={"k": "v"})
    rule = create_rule(owner, t["id"], "AGGREGATION")
    before = get_table(owner, t["id"])
    stranger = party()
    register(server, stranger)  # the same catalog table in its own catalog changes nothing
    c = stranger.client
    calls = [
        (c.get_configured_table, {}),
        (c.update_configured_table, {"name": "stolen", "allowedColumns": ["user_id"]}),
        (c.delete_configured_table, {}),
        (c.create_configured_table_analysis_rule, {"analysisRuleType": "LIST", "analysisRulePolicy": listing()}),
        (c.get_configured_table_analysis_rule, {"analysisRuleType": "AGGREGATION"}),
        (c.update_configured_table_analysis_rule, {"analysisRuleType": "AGGREGATION",
                                                   "analysisRulePolicy": aggregation(dimensionColumns=[])}),
        (c.delete_configured_table_analysis_rule, {"analysisRuleType": "AGGREGATION"}),
    ]
    for call, extra in calls:
        for table_id in (t["id"], UNKNOWN_ID):
            response = raises("ResourceNotFoundException", call, configuredTableIdentifier=table_id, **extra)
            assert (response["resourceId"], response["resourceType"]) == (table_id, "CONFIGURED_TABLE")
        foreign = raises("ResourceNotFoundException", call, configuredTableIdentifier=t["id"], **extra)
        unknown = raises("ResourceNotFoundException", call, configuredTableIdentifier=UNKNOWN_ID, **extra)
        assert foreign["Error"]["Message"].replace(t["id"], "X") == unknown["Error"]["Message"].replace(
            UNKNOWN_ID, "X")
    for call, extra in ((c.list_tags_for_resource, {}), (c.tag_resource, {"tags": {"x": "y"}}),
                        (c.untag_resource, {"tagKeys": ["k"]})):
        response = raises("ResourceNotFoundException", call, resourceArn=t["arn"], **extra)
        assert response["resourceType"] == "CONFIGURED_TABLE"
    assert c.list_configured_tables()["configuredTableSummaries"] == []
    assert get_table(owner, t["id"]) == before
    assert owner.client.get_configured_table_analysis_rule(
        configuredTableIdentifier=t["id"], analysisRuleType="AGGREGATION")["analysisRule"] == rule
    assert owner.client.list_tags_for_resource(resourceArn=t["arn"])["tags"] == {"k": "v"}
    assert [s["id"] for s in owner.client.list_configured_tables()["configuredTableSummaries"]] == [t["id"]]


def test_tags_on_configured_tables(owner):
    t = create_table(owner, tags={"env": "dev", "team": "x"})
    owner.client.tag_resource(resourceArn=t["arn"], tags={"env": "prod", "cost": ""})
    assert owner.client.list_tags_for_resource(resourceArn=t["arn"])["tags"] == {"env": "prod", "team": "x",
                                                                                 "cost": ""}
    owner.client.untag_resource(resourceArn=t["arn"], tagKeys=["team", "absent"])
    assert owner.client.list_tags_for_resource(resourceArn=t["arn"])["tags"] == {"env": "prod", "cost": ""}
    raises("ValidationException", owner.client.tag_resource, resourceArn=t["arn"], tags={"aws:x": "y"})
    response = raises("ResourceNotFoundException", owner.client.list_tags_for_resource,
                      resourceArn=t["arn"].replace(t["id"], UNKNOWN_ID))
    assert response["resourceType"] == "CONFIGURED_TABLE"
    raises("ValidationException", create_table, owner, tags={"aws:reserved": "v"})
    raises("ValidationException", create_table, owner, tags={f"k{i}": "v" for i in range(51)})
    assert [s["id"] for s in owner.client.list_configured_tables()["configuredTableSummaries"]] == [t["id"]]


# ------------------------------------------------------------------------------------------------ own servers


class _Party:
    def __init__(self, server, region="us-east-1"):
        self.account = server.new_account()
        self.id, self.client = self.account.account_id, server.client(self.account, region=region)


@pytest.fixture(scope="module")
def two_region_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("configured-tables"), "--region", "us-east-1", "--region",
                           "eu-west-1", "--quota", "configured_tables=3").start()
    yield server
    server.stop()


def test_configured_tables_quota(two_region_server):
    a, b = _Party(two_region_server), _Party(two_region_server)
    for p in (a, b):
        register(two_region_server, p)
    tables = [create_table(a, name=f"t{i}") for i in range(3)]
    response = raises("ServiceQuotaExceededException", create_table, a, name="fourth")
    assert (response["quotaName"], response["quotaValue"]) == ("Configured tables per account", 3.0)
    assert len(a.client.list_configured_tables()["configuredTableSummaries"]) == 3
    create_table(b)  # per account
    a.client.delete_configured_table(configuredTableIdentifier=tables[0]["id"])
    create_table(a, name="fits again")


def test_configured_tables_belong_to_their_region(two_region_server):
    account = two_region_server.new_account()
    east = two_region_server.client(account, region="us-east-1")
    west = two_region_server.client(account, region="eu-west-1")
    catalog_commands.add_table(two_region_server.db, account_id=account.account_id, database="advertiser",
                               table="customers", location=CUSTOMERS)  # any region
    t = east.create_configured_table(name="east", tableReference=GLUE, allowedColumns=["user_id"],
                                     analysisMethod="DIRECT_QUERY")["configuredTable"]
    response = raises("ResourceNotFoundException", west.get_configured_table, configuredTableIdentifier=t["id"])
    assert response["resourceId"] == t["id"]
    raises("ResourceNotFoundException", west.list_tags_for_resource, resourceArn=t["arn"])
    assert west.list_configured_tables()["configuredTableSummaries"] == []
    w = west.create_configured_table(name="west", tableReference=GLUE, allowedColumns=["user_id"],
                                     analysisMethod="DIRECT_QUERY")["configuredTable"]
    assert w["arn"].startswith(f"arn:aws:cleanrooms:eu-west-1:{account.account_id}:configuredtable/")
    assert [s["id"] for s in east.list_configured_tables()["configuredTableSummaries"]] == [t["id"]]


S3_KEY, S3_SECRET = "configuredtablestest", "configured-tables-test-secret"


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory):
    """moto's standalone server as an S3-compatible endpoint, in its own process."""
    with MotoS3(tmp_path_factory.mktemp("moto"), key=S3_KEY, secret=S3_SECRET) as moto:
        yield moto.endpoint


def test_glue_table_on_s3_is_read_with_the_servers_s3_settings(moto_s3, tmp_path):
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id=S3_KEY,
                      aws_secret_access_key=S3_SECRET)
    s3.create_bucket(Bucket="advertiser-data")
    s3.upload_file(CUSTOMERS, "advertiser-data", "customers/part-0.parquet")
    config = tmp_path / "server.toml"
    config.write_text(f'[s3]\nendpoint_url = "{moto_s3}"\naccess_key_id = "{S3_KEY}"\n'
                      f'secret_access_key = "{S3_SECRET}"\n')
    server = ServerProcess(tmp_path / "data", "--config", str(config)).start()
    try:
        p = _Party(server)
        register(server, p, location="s3://advertiser-data/customers/")
        t = create_table(p, allowedColumns=["user_id", "segment"])
        assert get_table(p, t["id"])["allowedColumns"] == ["user_id", "segment"]
        response = raises("ValidationException", create_table, p, allowedColumns=["user_id", "postcode"])
        assert "postcode" in response["Error"]["Message"]
        register(server, p, "advertiser", "nobucket", "s3://no-such-bucket/customers/")
        response = raises("ValidationException", create_table, p,
                          tableReference={"glue": {"databaseName": "advertiser", "tableName": "nobucket"}})
        assert "cannot be read" in response["Error"]["Message"] and S3_SECRET not in str(response)
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------ in process


@pytest.fixture
def local_ctx(tmp_path):
    """A request context over a private database, for what only code in the server process can arrange: the
    checks other families register with this one."""
    db = Database(database_url(tmp_path))
    db.migrate()
    catalog_commands.add_table(db, account_id="123456789012", database="advertiser", table="customers",
                               location=CUSTOMERS)

    def ctx(operation: str) -> RequestContext:
        return RequestContext(request_id="r", account_id="123456789012", region="us-east-1", operation=operation,
                              now=time.time(), db=db, tokens=PageTokens(b"k" * 32), quotas=Quotas())

    yield ctx
    db.dispose()


def test_registered_delete_checks_keep_tables_and_rules_in_use(local_ctx, monkeypatch):
    table = service.create_configured_table(local_ctx("CreateConfiguredTable"), {
        "name": "t", "tableReference": GLUE, "allowedColumns": ["user_id", "segment"],
        "analysisMethod": "DIRECT_QUERY"})["configuredTable"]
    rule_params = {"configuredTableIdentifier": table["id"], "analysisRuleType": "LIST"}
    service.create_analysis_rule(local_ctx("CreateConfiguredTableAnalysisRule"), dict(
        rule_params, analysisRulePolicy={"v1": {"list": {"joinColumns": ["user_id"], "listColumns": []}}}))
    seen = []

    def in_use(conn, configured_table_id, *rest):
        seen.append((configured_table_id, *rest))
        return "1 configured table association" if configured_table_id == table["id"] else None

    monkeypatch.setattr(service, "DELETE_CHECKS", [lambda conn, _: None, in_use])
    monkeypatch.setattr(service, "RULE_DELETE_CHECKS", [in_use])
    with pytest.raises(ServiceError) as info:
        service.delete_analysis_rule(local_ctx("DeleteConfiguredTableAnalysisRule"), dict(rule_params))
    assert (info.value.code, info.value.fields["reason"]) == ("ConflictException", "SUBRESOURCES_EXIST")
    with pytest.raises(ServiceError) as info:
        service.delete_configured_table(local_ctx("DeleteConfiguredTable"),
                                        {"configuredTableIdentifier": table["id"]})
    assert (info.value.code, info.value.fields) == ("ConflictException", {
        "resourceId": table["id"], "resourceType": "CONFIGURED_TABLE", "reason": "SUBRESOURCES_EXIST"})
    assert "1 configured table association" in info.value.message
    assert seen == [(table["id"], "LIST"), (table["id"],)]
    still = service.get_configured_table(local_ctx("GetConfiguredTable"), {"configuredTableIdentifier": table["id"]})
    assert still["configuredTable"]["analysisRuleTypes"] == ["LIST"]

    monkeypatch.setattr(service, "DELETE_CHECKS", [lambda conn, _: None])
    monkeypatch.setattr(service, "RULE_DELETE_CHECKS", [])
    service.delete_configured_table(local_ctx("DeleteConfiguredTable"), {"configuredTableIdentifier": table["id"]})
    with pytest.raises(ServiceError) as info:
        service.get_configured_table(local_ctx("GetConfiguredTable"), {"configuredTableIdentifier": table["id"]})
    assert info.value.code == "ResourceNotFoundException"
