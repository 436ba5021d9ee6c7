"""Intermediate tables over HTTP: a stored query, populated through the protected query path, queried again.

The world of test_protected_queries (alice can query and owns `customers`, bob owns `impressions`), with CUSTOM
rules. Every answer is checked against the model by the conformance hook; populated data is compared with an
independent DuckDB computation over the same files.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import pytest
import sqlalchemy as sa

from opencleanrooms.storage import intermediate_tables as intermediate_store
from opencleanrooms.storage import protected_queries as query_store
from tests.e2e.test_protected_queries import build_world, expected, rows, start, wait
from tests.support.builders import all_pages, raises

SEGMENTS = "SELECT c.user_id, c.segment, i.campaign_id, i.clicks FROM customers c JOIN impressions i ON c.user_id = i.user_id"


@pytest.fixture
def world(server, party, tmp_path):
    return build_world(server, party, tmp_path, rule_type="CUSTOM")


def create(world, name="reach", sql=SEGMENTS, who=None, **extra) -> dict:
    who = who or world.alice
    return who.client.create_intermediate_table(
        membershipIdentifier=world.mid(who), name=name,
        populationAnalysisConfiguration={"sqlParameters": {"queryString": sql}}, **extra)["intermediateTable"]


def populate(world, table: dict, **extra) -> dict:
    """Populate and wait for the population's protected query to end; the query as GetProtectedQuery shows it."""
    out = world.alice.client.populate_intermediate_table(
        membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"], **extra)
    assert out["analysisType"] == "QUERY"
    query = wait(world.alice.client, world.mid(world.alice), out["analysisId"])
    query["versionId"] = out["versionId"]
    return query


def get(world, table: dict) -> dict:
    return world.alice.client.get_intermediate_table(membershipIdentifier=world.mid(world.alice),
                                                     intermediateTableIdentifier=table["id"])["intermediateTable"]


def allow(world, table: dict, **rule) -> dict:
    body = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [world.alice.id]} | rule
    return world.alice.client.create_intermediate_table_analysis_rule(
        membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"],
        analysisRuleType="CUSTOM", analysisRulePolicy={"v1": {"custom": body}})["analysisRule"]


def versions(world, table: dict, **params) -> list:
    return all_pages(world.alice.client, "list_intermediate_table_versions", "intermediateTableVersionSummaries",
                     membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"], **params)


def data_directory(server, table: dict) -> Path:
    """Where the server keeps the data of the table's (only) version."""
    versions_table = intermediate_store.intermediate_table_versions
    with server.db.read() as conn:
        doc = conn.execute(sa.select(versions_table.c.doc)
                           .where(versions_table.c.table_id == table["id"])).scalar_one()
    return Path(urllib.parse.unquote(doc["location"][len("file://"):]))


def wait_gone(path: Path, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not path.exists()


# ------------------------------------------------------------------------------------------------ lifecycle


def test_create_populate_and_query_an_intermediate_table(world):
    table = create(world, description="joined reach", retentionInDays=7)
    assert table["status"] == "CREATED" and table["retentionInDays"] == 7 and "intermediateTableVersion" not in table
    assert table["arn"].endswith(f":membership/{world.mid(world.alice)}/intermediatetable/{table['id']}")
    assert table["collaborationId"] == world.collaboration["id"]

    query = populate(world, table)
    assert query["status"] == "SUCCESS", query
    assert query["resultConfiguration"]["outputConfiguration"]["intermediateTable"] == {
        "id": table["id"], "arn": table["arn"], "name": "reach"}
    assert "result" not in query  # the result is the table's new version, not a delivery
    listed = world.alice.client.list_protected_queries(membershipIdentifier=world.mid(world.alice))
    assert listed["protectedQueries"][0]["intermediateTableConfiguration"]["id"] == table["id"]

    got = get(world, table)
    assert got["status"] == "POPULATE_SUCCESS"
    assert got["schema"]["columns"] == [{"name": "user_id", "type": "string"}, {"name": "segment", "type": "string"},
                                        {"name": "campaign_id", "type": "string"}, {"name": "clicks", "type": "bigint"}]
    version = got["intermediateTableVersion"]
    assert version["versionId"] == query["versionId"] and version["analysisId"] == query["id"]
    assert version["expirationTime"] > got["createTime"]
    assert version["inheritedConstraints"]["allowedResultReceivers"]["value"] == [world.alice.id]
    assert {s["name"] for s in version["inheritedConstraints"]["allowedResultReceivers"]["sources"]} == {
        "customers", "impressions"}
    assert sorted((d["name"], d["type"], d["parentType"], d["creatorAccountId"]) for d in got["tableDependencies"]) == [
        ("customers", "TABLE", "DIRECT", world.alice.id), ("impressions", "TABLE", "DIRECT", world.bob.id)]

    # without its own analysis rule it cannot be queried; with one it can, and it holds what the population read
    refused = start(world, "SELECT segment, COUNT(DISTINCT user_id) AS users FROM reach GROUP BY segment")
    assert refused["status"] == "FAILED" and "no analysis rule" in refused["error"]["message"]
    rule = allow(world, table)
    assert rule["analysisRuleType"] == "CUSTOM" and rule["intermediateTableIdentifier"] == table["id"]
    sql = "SELECT segment, COUNT(DISTINCT user_id) AS users, SUM(clicks) AS clicks FROM reach GROUP BY segment"
    done = wait(world.alice.client, world.mid(world.alice), start(world, sql)["id"])
    assert rows(done) == expected(world, f"SELECT segment, COUNT(DISTINCT user_id), SUM(clicks) FROM ({SEGMENTS}) "
                                         "GROUP BY segment")
    assert get(world, table)["analysisRuleTypes"] == ["CUSTOM"]


def test_each_population_is_a_new_version_and_versions_page(world):
    table = create(world, sql="SELECT segment, COUNT(user_id) AS n FROM customers GROUP BY segment")
    ids = [populate(world, table)["versionId"] for _ in range(3)]
    listed = versions(world, table, PaginationConfig={"PageSize": 2})
    assert [v["versionId"] for v in listed] == ids[::-1]  # newest first
    assert {v["status"] for v in listed} == {"POPULATE_SUCCESS"} and {v["tableId"] for v in listed} == {table["id"]}
    page = world.alice.client.list_intermediate_table_versions(
        membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"], maxResults=1)
    assert len(page["intermediateTableVersionSummaries"]) == 1 and page["nextToken"]
    assert get(world, table)["intermediateTableVersion"]["versionId"] == ids[-1]


def test_update_list_and_idempotent_delete(server, world):
    tables = [create(world, name=f"t{i}", sql="SELECT segment FROM customers") for i in range(5)]
    listed = all_pages(world.alice.client, "list_intermediate_tables", "intermediateTableSummaries",
                       membershipIdentifier=world.mid(world.alice), PaginationConfig={"PageSize": 2})
    assert [t["id"] for t in listed] == [t["id"] for t in tables[::-1]]
    assert {t["status"] for t in listed} == {"CREATED"}
    updated = world.alice.client.update_intermediate_table(
        membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=tables[0]["id"],
        description="new words")["intermediateTable"]
    assert updated["description"] == "new words"
    raises("ValidationException", world.alice.client.update_intermediate_table,
           membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=tables[0]["id"],
           columns=[{"name": "segment", "type": "string"}])  # not populated: no columns yet
    populate(world, tables[0])
    updated = world.alice.client.update_intermediate_table(
        membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=tables[0]["id"],
        columns=[{"name": "segment", "type": "varchar(10)"}])["intermediateTable"]
    assert updated["schema"]["columns"] == [{"name": "segment", "type": "varchar(10)"}]
    directory = data_directory(server, tables[0])
    assert directory.exists()
    for _ in range(2):  # the delete is idempotent
        world.alice.client.delete_intermediate_table(membershipIdentifier=world.mid(world.alice),
                                                     intermediateTableIdentifier=tables[0]["id"])
    raises("ResourceNotFoundException", get, world, tables[0])
    assert wait_gone(directory)  # a runner deletes the data of a deleted table


def test_a_refused_population_fails_its_version(world):
    table = create(world, sql="SELECT no_such_column FROM customers")
    query = populate(world, table)
    assert query["status"] == "FAILED" and query["error"]["code"] == "MALFORMED_QUERY"
    assert get(world, table)["status"] == "POPULATE_FAILED"
    assert [v["status"] for v in versions(world, table)] == ["POPULATE_FAILED"]
    unnamed = create(world, name="unnamed", sql="SELECT segment, COUNT(*) FROM customers GROUP BY segment")
    query = populate(world, unnamed)
    assert query["status"] == "FAILED" and "alias" in query["error"]["message"]


def test_populating_from_an_analysis_template_with_parameters(world):
    template = world.alice.client.create_analysis_template(
        membershipIdentifier=world.mid(world.alice), name="by segment", format="SQL",
        source={"text": "SELECT user_id, segment FROM customers WHERE segment = :seg"},
        analysisParameters=[{"name": "seg", "type": "VARCHAR", "defaultValue": "a"}])["analysisTemplate"]
    table = world.alice.client.create_intermediate_table(
        membershipIdentifier=world.mid(world.alice), name="seg",
        populationAnalysisConfiguration={"sqlParameters": {"analysisTemplateArn": template["arn"]}}
    )["intermediateTable"]
    query = populate(world, table, parameters={"seg": "b"})
    assert query["status"] == "SUCCESS", query
    version = get(world, table)["intermediateTableVersion"]
    assert version["parameters"] == {"seg": "b"}
    allow(world, table)
    done = wait(world.alice.client, world.mid(world.alice),
                start(world, "SELECT segment, COUNT(DISTINCT user_id) AS n FROM seg GROUP BY segment")["id"])
    assert rows(done) == [("b", 50)]


# ------------------------------------------------------------------------------------------------ inherited controls


def test_disallowed_columns_are_deferred_then_inherited_with_lineage(server, party, tmp_path):
    rule = {"allowedAnalyses": ["ANY_QUERY"], "disallowedOutputColumns": ["email"]}
    world = build_world(server, party, tmp_path, rule_type="CUSTOM", customers_rule=None)
    alice_rule = dict(rule, allowedAnalysisProviders=[world.alice.id])
    world.alice.client.update_configured_table_analysis_rule(
        configuredTableIdentifier=world.tables["customers"]["id"], analysisRuleType="CUSTOM",
        analysisRulePolicy={"v1": {"custom": alice_rule}})
    table = create(world, name="contacts", sql="SELECT user_id, UPPER(email) AS mail, segment FROM customers")
    assert populate(world, table)["status"] == "SUCCESS"  # deferred: the population may carry the column
    inherited = get(world, table)["intermediateTableVersion"]["inheritedConstraints"]["disallowedOutputColumns"]
    assert inherited["value"] == ["mail"]
    assert inherited["columnLineage"] == [{
        "column": "mail", "sourceColumn": "email", "sourceName": "customers",
        "sourceId": world.associations["customers"]["id"], "sourceType": "TABLE", "sourceAccountId": world.alice.id}]
    allow(world, table)
    refused = start(world, "SELECT mail FROM contacts")
    assert refused["status"] == "FAILED" and "mail" in refused["error"]["message"]
    done = wait(world.alice.client, world.mid(world.alice),
                start(world, "SELECT segment, COUNT(mail) AS n FROM contacts GROUP BY segment")["id"])
    assert done["status"] == "SUCCESS", done
    # a table populated from this one inherits the restriction, through it
    child = create(world, name="mails", sql="SELECT segment, LOWER(mail) AS address FROM contacts")
    assert populate(world, child)["status"] == "SUCCESS"
    inherited = get(world, child)["intermediateTableVersion"]["inheritedConstraints"]["disallowedOutputColumns"]
    assert inherited["value"] == ["address"]
    assert [(e["sourceName"], e["sourceColumn"], e["sourceType"]) for e in inherited["columnLineage"]] == [
        ("contacts", "mail", "INTERMEDIATE_TABLE")]


def test_a_multi_party_rule_can_only_make_inherited_controls_stricter(world):
    table = create(world)
    populate(world, table)
    response = raises("ValidationException", allow, world, table, allowedResultReceivers=[world.bob.id])
    assert "allowedResultReceivers" in response["Error"]["Message"]
    raises("ValidationException", allow, world, table, differentialPrivacy={"columns": [{"name": "user_id"}]})
    raises("ValidationException", allow, world, table, disallowedOutputColumns=["no_such_column"])
    allow(world, table, allowedResultReceivers=[world.alice.id])


def test_results_go_only_to_receivers_every_base_table_allows(server, party, tmp_path):
    world = build_world(server, party, tmp_path, rule_type="CUSTOM", bob_abilities=("CAN_RECEIVE_RESULTS",),
                        receivers=["alice", "bob"])
    table = create(world)
    populate(world, table)
    allow(world, table, allowedResultReceivers=[world.alice.id])  # stricter than the inherited [alice, bob]
    bob_default = {"outputConfiguration": {"s3": {"bucket": "bob-results", "resultFormat": "CSV"}}}
    world.bob.client.update_membership(membershipIdentifier=world.mid(world.bob),
                                       defaultResultConfiguration=bob_default)
    refused = start(world, "SELECT segment, COUNT(DISTINCT user_id) AS n FROM reach GROUP BY segment",
                    resultConfiguration={"outputConfiguration": {"member": {"accountId": world.bob.id}}})
    assert refused["status"] == "FAILED" and refused["error"]["code"] == "RESOURCE_ACCESS_DENIED"


def test_base_tables_access_budgets_are_spent_by_population_and_by_every_query_of_the_table(world):
    """An intermediate table is no way around a base table's access budget: reading it spends the budgets of the
    tables it was populated from, as the population did."""
    bob_mid = world.mid(world.bob)
    arn = (f"arn:aws:cleanrooms:us-east-1:{world.bob.id}:membership/{bob_mid}/configuredtableassociation/"
           f"{world.associations['impressions']['id']}")
    world.bob.client.create_privacy_budget_template(
        membershipIdentifier=bob_mid, privacyBudgetType="ACCESS_BUDGET", autoRefresh="NONE",
        parameters={"accessBudget": {"resourceArn": arn, "budgetParameters": [{"type": "LIFETIME", "budget": 2}]}})
    table = create(world)
    assert populate(world, table)["status"] == "SUCCESS"  # spends 1
    allow(world, table)
    sql = "SELECT segment, COUNT(DISTINCT user_id) AS users FROM reach GROUP BY segment"
    assert wait(world.alice.client, world.mid(world.alice), start(world, sql)["id"])["status"] == "SUCCESS"
    refused = start(world, sql)
    assert refused["status"] == "FAILED" and "budget" in refused["error"]["message"].lower()


# ------------------------------------------------------------------------------------------------ disallow, removal


def test_a_data_provider_disallows_a_table_and_its_descendants(world):
    parent = create(world)
    populate(world, parent)
    allow(world, parent)
    child = create(world, name="reach by segment",
                   sql="SELECT segment, COUNT(DISTINCT user_id) AS users FROM reach GROUP BY segment")
    assert populate(world, child)["status"] == "SUCCESS"
    got_child = get(world, child)
    assert sorted((d["name"], d["parentType"]) for d in got_child["tableDependencies"]) == [
        ("customers", "INDIRECT"), ("impressions", "INDIRECT"), ("reach", "DIRECT")]
    assert get(world, parent)["childResources"] == [{
        "resourceId": child["id"], "resourceType": "INTERMEDIATE_TABLE", "resourceName": "reach by segment",
        "ownerAccountId": world.alice.id, "resourceStatus": "POPULATE_SUCCESS"}]

    raises("ResourceNotFoundException", world.bob.client.disallow_intermediate_table,
           membershipIdentifier=world.mid(world.bob), intermediateTableName="no such table")
    world.bob.client.disallow_intermediate_table(membershipIdentifier=world.mid(world.bob),
                                                 intermediateTableName="REACH")
    for table in (parent, child):
        got = get(world, table)
        assert got["status"] == "DISALLOWED_BY_DATA_PROVIDER" and world.bob.id in got["statusReason"]
    refused = start(world, "SELECT segment, COUNT(DISTINCT user_id) AS users FROM reach GROUP BY segment")
    assert refused["status"] == "FAILED" and refused["error"]["code"] == "INVALID_RESOURCE"
    assert "DISALLOWED_BY_DATA_PROVIDER" in refused["error"]["message"]
    raises("ConflictException", world.alice.client.populate_intermediate_table,
           membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=parent["id"])


def test_disallow_without_descendants_and_only_by_a_provider(world):
    parent = create(world, sql="SELECT user_id, campaign_id FROM impressions")
    populate(world, parent)
    allow(world, parent)
    child = create(world, name="campaigns", sql="SELECT campaign_id, COUNT(user_id) AS n FROM reach GROUP BY campaign_id")
    populate(world, child)
    only_alice = create(world, name="mine", sql="SELECT segment FROM customers")
    populate(world, only_alice)
    raises("AccessDeniedException", world.bob.client.disallow_intermediate_table,
           membershipIdentifier=world.mid(world.bob), intermediateTableName="mine")
    world.bob.client.disallow_intermediate_table(membershipIdentifier=world.mid(world.bob),
                                                 intermediateTableName="reach", includeDescendants=False)
    assert get(world, parent)["status"] == "DISALLOWED_BY_DATA_PROVIDER"
    assert get(world, child)["status"] == "POPULATE_SUCCESS"


def test_removing_a_base_table_invalidates_the_table(world):
    table = create(world, sql="SELECT user_id, campaign_id FROM impressions")
    populate(world, table)
    world.bob.client.delete_configured_table_association_analysis_rule(
        membershipIdentifier=world.mid(world.bob),
        configuredTableAssociationIdentifier=world.associations["impressions"]["id"], analysisRuleType="CUSTOM")
    world.bob.client.delete_configured_table_association(
        membershipIdentifier=world.mid(world.bob),
        configuredTableAssociationIdentifier=world.associations["impressions"]["id"])
    got = get(world, table)
    assert got["status"] == "BASE_TABLE_REMOVED" and "impressions" in got["statusReason"]


def test_expired_versions_are_not_served(server, world):
    table = create(world, sql="SELECT segment, COUNT(user_id) AS n FROM customers GROUP BY segment",
                   retentionInDays=1)
    populate(world, table)
    allow(world, table)
    with server.db.write() as conn:  # a day and more later
        conn.execute(intermediate_store.intermediate_table_versions.update()
                     .where(intermediate_store.intermediate_table_versions.c.table_id == table["id"])
                     .values(expiration_time=1.0))
    assert get(world, table)["status"] == "RETENTION_PERIOD_EXPIRED"
    assert [v["status"] for v in versions(world, table)] == ["RETENTION_PERIOD_EXPIRED"]
    refused = start(world, "SELECT segment FROM reach")
    assert refused["status"] == "FAILED" and "expired" in refused["error"]["message"]
    # and a runner deletes the expired data
    V = intermediate_store.intermediate_table_versions
    assert wait_gone(data_directory(server, table))
    with server.db.read() as conn:
        assert conn.execute(sa.select(V.c.purged_time).where(V.c.table_id == table["id"])).scalar_one() is not None
    populate(world, table)  # a new population serves again
    assert get(world, table)["status"] == "POPULATE_SUCCESS"
    assert wait(world.alice.client, world.mid(world.alice), start(world, "SELECT segment FROM reach")["id"])[
        "status"] == "SUCCESS"


# ------------------------------------------------------------------------------------------------ access, validation


def test_access_from_every_role(world, party):
    """Every operation, by a co-member (through alice's membership and its own) and by a stranger: nothing of
    alice's table is seen or changed."""
    table = create(world)
    populate(world, table)
    allow(world, table)
    before = get(world, table)
    stranger = party()
    rule = {"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [world.bob.id]}}}
    on_table = {
        "get_intermediate_table": {}, "update_intermediate_table": {"description": "mine now"},
        "delete_intermediate_table": {}, "list_intermediate_table_versions": {}, "populate_intermediate_table": {},
        "create_intermediate_table_analysis_rule": {"analysisRuleType": "CUSTOM", "analysisRulePolicy": rule},
        "get_intermediate_table_analysis_rule": {"analysisRuleType": "CUSTOM"},
        "update_intermediate_table_analysis_rule": {"analysisRuleType": "CUSTOM", "analysisRulePolicy": rule},
        "delete_intermediate_table_analysis_rule": {"analysisRuleType": "CUSTOM"}}
    on_membership = {
        "list_intermediate_tables": {},
        "create_intermediate_table": {"name": "planted", "populationAnalysisConfiguration": {
            "sqlParameters": {"queryString": "SELECT segment FROM customers"}}},
        "disallow_intermediate_table": {"intermediateTableName": "reach"}}
    for who in (world.bob, stranger):  # through alice's membership: it is not theirs
        for name, params in on_table.items():
            raises("ResourceNotFoundException", getattr(who.client, name), membershipIdentifier=world.mid(world.alice),
                   intermediateTableIdentifier=table["id"], **params)
        for name, params in on_membership.items():
            raises("ResourceNotFoundException", getattr(who.client, name), membershipIdentifier=world.mid(world.alice),
                   **params)
    # through bob's own membership the table is not there (a delete of it is idempotent and does nothing)
    for name, params in on_table.items():
        call = getattr(world.bob.client, name)
        if name == "delete_intermediate_table":
            call(membershipIdentifier=world.mid(world.bob), intermediateTableIdentifier=table["id"])
        else:  # populating needs CAN_QUERY first
            raises("AccessDeniedException" if name == "populate_intermediate_table" else "ResourceNotFoundException",
                   call, membershipIdentifier=world.mid(world.bob), intermediateTableIdentifier=table["id"], **params)
    assert world.bob.client.list_intermediate_tables(
        membershipIdentifier=world.mid(world.bob))["intermediateTableSummaries"] == []
    raises("AccessDeniedException", create, world, name="bobs", who=world.bob)  # bob cannot query
    assert get(world, table) == before
    assert get(world, table)["status"] == "POPULATE_SUCCESS"


def test_validation(world):
    create(world, name="taken")
    for name in ("taken", "TAKEN", "customers"):  # one namespace with associations, compared case-insensitively
        raises("ConflictException", create, world, name=name)
    raises("ConflictException", world.bob.client.create_configured_table_association,
           membershipIdentifier=world.mid(world.bob), configuredTableIdentifier=world.tables["impressions"]["id"],
           name="taken", roleArn="arn:aws:iam::111122223333:role/x")
    for configuration in ({"sqlParameters": {}}, {"sqlParameters": {"queryString": "  "}},
                          {"sqlParameters": {"queryString": "SELECT 1", "analysisTemplateArn": (
                              f"arn:aws:cleanrooms:us-east-1:{world.alice.id}:membership/"
                              f"{world.mid(world.alice)}/analysistemplate/x")}},
                          {"jobParameters": {"analysisTemplateArn": (
                              f"arn:aws:cleanrooms:us-east-1:{world.alice.id}:membership/"
                              f"{world.mid(world.alice)}/analysistemplate/x")}}):
        raises("ValidationException", world.alice.client.create_intermediate_table,
               membershipIdentifier=world.mid(world.alice), name="x", populationAnalysisConfiguration=configuration)
    table = create(world, name="plain")
    raises("ValidationException", world.alice.client.populate_intermediate_table,
           membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"],
           parameters={"p": "1"})
    raises("ValidationException", world.alice.client.populate_intermediate_table,
           membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"],
           computeConfiguration={"jobComputeConfiguration": {"worker": {"type": "CR.1X", "number": 4}}})
    raises("ResourceNotFoundException", world.alice.client.get_intermediate_table_analysis_rule,
           membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"],
           analysisRuleType="CUSTOM")
    allow(world, table)
    raises("ConflictException", allow, world, table)
    updated = world.alice.client.update_intermediate_table_analysis_rule(
        membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"],
        analysisRuleType="CUSTOM", analysisRulePolicy={"v1": {"custom": {
            "allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [world.alice.id],
            "disallowedOutputColumns": ["segment"]}}})["analysisRule"]
    assert updated["analysisRulePolicy"]["v1"]["custom"]["disallowedOutputColumns"] == ["segment"]
    world.alice.client.delete_intermediate_table_analysis_rule(
        membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"],
        analysisRuleType="CUSTOM")
    raises("ResourceNotFoundException", world.alice.client.delete_intermediate_table_analysis_rule,
           membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"],
           analysisRuleType="CUSTOM")
    raises("ValidationException", world.alice.client.start_protected_query, type="SQL",
           membershipIdentifier=world.mid(world.alice), sqlParameters={"queryString": "SELECT segment FROM plain"},
           resultConfiguration={"outputConfiguration": {"intermediateTable": {
               "id": table["id"], "arn": table["arn"], "name": "plain"}}})


def test_membership_with_intermediate_tables_cannot_be_deleted(world):
    create(world, name="tagged", tags={"team": "growth"})
    raises("ConflictException", world.alice.client.delete_membership, membershipIdentifier=world.mid(world.alice))


def test_members_see_intermediate_tables_as_schemas(world, party):
    table = create(world)
    schema = world.bob.client.get_schema(collaborationIdentifier=world.collaboration["id"], name="REACH")["schema"]
    assert schema["type"] == "INTERMEDIATE_TABLE" and schema["columns"] == []
    assert schema["schemaStatusDetails"][0]["status"] == "NOT_READY"
    assert schema["schemaStatusDetails"][0]["reasons"][0]["code"] == "INTERMEDIATE_TABLE_NOT_POPULATED"
    assert schema["schemaTypeProperties"] == {"intermediateTable": {"intermediateTableId": table["id"]}}
    populate(world, table)
    allow(world, table, disallowedOutputColumns=["clicks"])
    schema = world.bob.client.get_schema(collaborationIdentifier=world.collaboration["id"], name="reach")["schema"]
    assert schema["schemaStatusDetails"] == [{"status": "READY", "analysisRuleType": "CUSTOM",
                                              "analysisType": "DIRECT_ANALYSIS"}]
    assert [c["name"] for c in schema["columns"]] == ["user_id", "segment", "campaign_id", "clicks"]
    rule = world.bob.client.get_schema_analysis_rule(collaborationIdentifier=world.collaboration["id"],
                                                     name="reach", type="CUSTOM")["analysisRule"]
    assert rule["consolidatedPolicy"]["v1"]["custom"]["allowedResultReceivers"] == [world.alice.id]
    assert rule["consolidatedPolicy"]["v1"]["custom"]["disallowedOutputColumns"] == ["clicks"]
    raises("ResourceNotFoundException", world.bob.client.get_schema_analysis_rule,
           collaborationIdentifier=world.collaboration["id"], name="reach", type="LIST")
    batch = world.bob.client.batch_get_schema(collaborationIdentifier=world.collaboration["id"],
                                              names=["reach", "customers", "nothing"])
    assert [s["name"] for s in batch["schemas"]] == ["reach", "customers"] and len(batch["errors"]) == 1
    # all relations, one per page: the associations, then the intermediate tables
    listed = all_pages(world.bob.client, "list_schemas", "schemaSummaries",
                       collaborationIdentifier=world.collaboration["id"], PaginationConfig={"PageSize": 1})
    assert [s["name"] for s in listed] == ["impressions", "customers", "reach"]
    only = world.bob.client.list_schemas(collaborationIdentifier=world.collaboration["id"],
                                         schemaType="INTERMEDIATE_TABLE")["schemaSummaries"]
    assert [(s["name"], s["type"]) for s in only] == [("reach", "INTERMEDIATE_TABLE")]
    raises("AccessDeniedException", party().client.get_schema, collaborationIdentifier=world.collaboration["id"],
           name="reach")


def test_names_are_relation_names(world):
    for name in ("bad.name", "-dash", "semi;colon"):
        raises("ValidationException", create, world, name=name)


def test_one_population_at_a_time(server, world):
    """While a population's query has not ended, the table shows POPULATE_STARTED and another population is a
    ConflictException. (The running state is set in the database: a runner holds it with a long lease.)"""
    table = create(world, sql="SELECT segment, COUNT(user_id) AS n FROM customers GROUP BY segment")
    first = populate(world, table)
    with server.db.write() as conn:
        conn.execute(query_store.protected_queries.update().where(query_store.protected_queries.c.id == first["id"])
                     .values(status="STARTED", runner="elsewhere", lease_until=4e9))
    assert get(world, table)["status"] == "POPULATE_STARTED"
    assert [v["status"] for v in versions(world, table)] == ["POPULATE_STARTED"]
    raises("ConflictException", world.alice.client.populate_intermediate_table,
           membershipIdentifier=world.mid(world.alice), intermediateTableIdentifier=table["id"])
    with server.db.write() as conn:
        conn.execute(query_store.protected_queries.update().where(query_store.protected_queries.c.id == first["id"])
                     .values(status="SUCCESS", lease_until=None))
    assert get(world, table)["status"] == "POPULATE_SUCCESS"
    assert populate(world, table)["status"] == "SUCCESS"
