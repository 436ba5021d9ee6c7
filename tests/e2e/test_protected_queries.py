"""Protected queries over HTTP: members' SQL runs on their real data under every analysis rule.

Two members bring generated tables (Parquet, written here with DuckDB) into a collaboration; the member who can
query runs SQL through StartProtectedQuery and reads the result the server wrote. Every answer is checked against
the model by the conformance hook, and every result against an independent DuckDB computation on the same files.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import duckdb
import pytest

from opencleanrooms.catalog import commands as catalog_commands
from opencleanrooms.results import read_result
from tests.support.builders import all_pages, poll, raises

ROLE = "arn:aws:iam::111122223333:role/cleanrooms-table-access"
FINAL = {"SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT"}
USERS = 200  # customers u000..u199; impressions cover u000..u149


def write_tables(directory) -> dict:
    """customers(user_id, segment, age_band, email) and impressions(user_id, campaign_id, clicks) as Parquet."""
    paths = {"customers": str(directory / "customers.parquet"), "impressions": str(directory / "impressions.parquet")}
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT printf('u%03d', i) AS user_id, ['a','b','c','d'][i % 4 + 1] AS segment,
                           (i % 3) * 10 AS age_band, printf('user%d@example.com', i) AS email
                           FROM range({USERS}) t(i)) TO '{paths["customers"]}' (FORMAT parquet)""")
        con.execute(f"""COPY (SELECT printf('u%03d', i % 150) AS user_id, printf('c%d', i % 5) AS campaign_id,
                           CAST(i % 7 AS BIGINT) AS clicks FROM range(900) t(i))
                        TO '{paths["impressions"]}' (FORMAT parquet)""")
    return paths


@dataclass
class World:
    alice: object  # creator, CAN_QUERY + CAN_RECEIVE_RESULTS, owns customers
    bob: object  # contributor, owns impressions
    collaboration: dict
    memberships: dict
    paths: dict
    tables: dict  # name -> configured table
    associations: dict = field(default_factory=dict)  # name -> configured table association

    def mid(self, who) -> str:
        return self.memberships[who.id]["id"]


def catalog_tables(server, alice, bob, tmp_path) -> dict:
    """Write the two tables and put them in the owners' catalogs: alice's crm.customers, bob's ads.impressions."""
    paths = write_tables(tmp_path)
    catalog_commands.add_table(server.db, account_id=alice.id, database="crm", table="customers",
                               location=paths["customers"])
    catalog_commands.add_table(server.db, account_id=bob.id, database="ads", table="impressions",
                               location=paths["impressions"])
    return paths


def build_world(server, party, tmp_path, *, customers_rule=None, impressions_rule=None, rule_type="AGGREGATION",
                bob_abilities=(), alice_abilities=("CAN_QUERY", "CAN_RECEIVE_RESULTS"), query_log="DISABLED",
                receivers=None, bob_pays=False) -> World:
    """Alice (the creator, who queries) and Bob, each with a table; with `bob_pays`, Bob pays for query compute."""
    alice, bob = party(), party()
    pays = {"queryCompute": {"isResponsible": True}}
    payment = {"creatorPaymentConfiguration": {"queryCompute": {"isResponsible": False}}} if bob_pays else {}
    paths = catalog_tables(server, alice, bob, tmp_path)
    collaboration = alice.client.create_collaboration(
        name="reach", description="customers x impressions", creatorDisplayName="Alice",
        creatorMemberAbilities=list(alice_abilities), queryLogStatus=query_log,
        members=[{"accountId": bob.id, "displayName": "Bob", "memberAbilities": list(bob_abilities),
                  **({"paymentConfiguration": pays} if bob_pays else {})}], **payment,
    )["collaboration"]
    result_config = {"outputConfiguration": {"s3": {"bucket": "alice-results", "keyPrefix": "reach",
                                                    "resultFormat": "CSV"}}}
    memberships = {
        alice.id: alice.client.create_membership(collaborationIdentifier=collaboration["id"], queryLogStatus=query_log,
                                                 defaultResultConfiguration=result_config)["membership"],
        bob.id: bob.client.create_membership(collaborationIdentifier=collaboration["id"], queryLogStatus=query_log,
                                             **({"paymentConfiguration": pays} if bob_pays else {}))["membership"],
    }
    world = World(alice, bob, collaboration, memberships, paths, {})
    member = {"AGGREGATION": "aggregation", "LIST": "list", "CUSTOM": "custom"}[rule_type]
    for who, database, name, columns, rule in (
            (alice, "crm", "customers", ["user_id", "segment", "age_band", "email"],
             customers_rule or default_rule(rule_type, "customers", alice.id)),
            (bob, "ads", "impressions", ["user_id", "campaign_id", "clicks"],
             impressions_rule or default_rule(rule_type, "impressions", alice.id))):
        table = who.client.create_configured_table(
            name=name, tableReference={"glue": {"databaseName": database, "tableName": name}}, allowedColumns=columns,
            analysisMethod="DIRECT_QUERY")["configuredTable"]
        who.client.create_configured_table_analysis_rule(configuredTableIdentifier=table["id"],
                                                         analysisRuleType=rule_type,
                                                         analysisRulePolicy={"v1": {member: rule}})
        association = who.client.create_configured_table_association(
            membershipIdentifier=world.mid(who), configuredTableIdentifier=table["id"], name=name,
            roleArn=ROLE)["configuredTableAssociation"]
        who.client.create_configured_table_association_analysis_rule(
            membershipIdentifier=world.mid(who), configuredTableAssociationIdentifier=association["id"],
            analysisRuleType=rule_type,
            analysisRulePolicy={"v1": {member: {"allowedResultReceivers": [
                {"alice": alice.id, "bob": bob.id}[r] for r in receivers or ["alice"]]}}})
        world.tables[name] = table
        world.associations[name] = association
    return world


def default_rule(rule_type: str, table: str, runner: str) -> dict:
    if rule_type == "AGGREGATION" and table == "customers":
        return {"aggregateColumns": [{"columnNames": ["user_id"], "function": "COUNT_DISTINCT"}],
                "joinColumns": ["user_id"], "dimensionColumns": ["segment", "age_band"], "scalarFunctions": ["LOWER"],
                "outputConstraints": [{"columnName": "user_id", "minimum": 2, "type": "COUNT_DISTINCT"}]}
    if rule_type == "AGGREGATION":
        return {"aggregateColumns": [{"columnNames": ["clicks"], "function": "SUM"},
                                     {"columnNames": ["user_id"], "function": "COUNT_DISTINCT"}],
                "joinColumns": ["user_id"], "dimensionColumns": ["campaign_id"], "scalarFunctions": [],
                "joinRequired": "QUERY_RUNNER",
                "outputConstraints": [{"columnName": "user_id", "minimum": 30, "type": "COUNT_DISTINCT"}]}
    if rule_type == "LIST":
        columns = ["segment", "age_band"] if table == "customers" else ["campaign_id"]
        return {"joinColumns": ["user_id"], "listColumns": columns}
    return {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [runner]}


def start(world: World, sql: str, **extra) -> dict:
    return world.alice.client.start_protected_query(
        type="SQL", membershipIdentifier=world.mid(world.alice), sqlParameters={"queryString": sql},
        **extra)["protectedQuery"]


def wait(client, membership_id: str, query_id: str, timeout: float = 60) -> dict:
    """The query once it has ended (or as it is after `timeout` seconds)."""
    return wait_for(client, membership_id, query_id, FINAL, timeout)


def wait_for(client, membership_id: str, query_id: str, statuses, timeout: float = 30) -> dict:
    return poll(lambda: client.get_protected_query(membershipIdentifier=membership_id,
                                                   protectedQueryIdentifier=query_id)["protectedQuery"],
                statuses, timeout, 0.05)


def run(world: World, sql: str, **extra) -> dict:
    query = start(world, sql, **extra)
    return wait(world.alice.client, world.mid(world.alice), query["id"])


def rows(query: dict) -> list[tuple]:
    assert query["status"] == "SUCCESS", query
    table = read_result(query["result"]["output"]["s3"]["location"])
    return sorted(tuple(r.values()) for r in table.to_pylist())


def expected(world: World, sql: str) -> list[tuple]:
    """The same question answered directly by DuckDB over the same files, written independently."""
    with duckdb.connect() as con:
        for name, path in world.paths.items():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        return sorted(tuple(None if v is None else v for v in r) for r in con.execute(sql).fetchall())


@pytest.fixture
def world(server, party, tmp_path):
    return build_world(server, party, tmp_path)


# ------------------------------------------------------------------------------------------------ lifecycle


def test_an_allowed_query_runs_and_its_result_matches_an_independent_computation(world):
    query = start(world, "SELECT c.segment, COUNT(DISTINCT i.user_id) AS users, SUM(i.clicks) AS clicks "
                         "FROM customers c INNER JOIN impressions i ON c.user_id = i.user_id GROUP BY c.segment")
    assert query["status"] == "SUBMITTED" and query["membershipId"] == world.mid(world.alice)
    done = wait(world.alice.client, world.mid(world.alice), query["id"])
    assert done["status"] == "SUCCESS", done
    assert done["result"]["output"]["s3"]["location"].endswith(f"/reach/{query['id']}/")
    assert done["statistics"]["totalDurationInMillis"] >= 0
    # impressions' output constraint (30 distinct users per row) holds for every segment here: nothing dropped
    assert rows(done) == expected(world, "SELECT c.segment, COUNT(DISTINCT i.user_id), SUM(i.clicks) FROM customers c "
                                         "JOIN impressions i ON c.user_id = i.user_id GROUP BY c.segment")


def test_output_constraints_silently_drop_small_groups(world):
    sql = ("SELECT c.age_band, i.campaign_id, COUNT(DISTINCT c.user_id) AS users FROM customers c "
           "INNER JOIN impressions i ON c.user_id = i.user_id WHERE c.segment = 'a' GROUP BY c.age_band, i.campaign_id")
    got = rows(run(world, sql))
    everything = expected(world, sql.replace("INNER JOIN", "JOIN"))
    kept = expected(world, sql.replace("INNER JOIN", "JOIN") + " HAVING COUNT(DISTINCT i.user_id) >= 30 AND "
                    "COUNT(DISTINCT c.user_id) >= 30")
    assert got == kept and len(kept) < len(everything)  # some groups really were dropped


def test_a_refused_query_fails_with_the_rule_and_nothing_runs(world):
    query = start(world, "SELECT user_id, clicks FROM impressions")
    assert query["status"] == "FAILED"
    assert query["error"]["code"] == "MALFORMED_QUERY" and query["error"]["retry"] == {"retryable": False}
    assert "impressions" in query["error"]["message"]
    assert "result" not in query
    again = wait(world.alice.client, world.mid(world.alice), query["id"])
    assert again == query


def test_unknown_tables_and_syntax_errors_fail(world):
    assert start(world, "SELECT COUNT(DISTINCT user_id) FROM orders")["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert start(world, "SELEC 1")["error"]["code"] == "MALFORMED_QUERY"
    assert start(world, "SELECT * FROM read_files('/etc/passwd')")["status"] == "FAILED"


def test_list_and_get_show_queries_to_runner_and_receiver_only(world, party):
    first = start(world, "SELECT COUNT(DISTINCT user_id) AS n FROM customers")
    second = start(world, "SELECT email FROM customers")
    wait(world.alice.client, world.mid(world.alice), first["id"])
    listed = all_pages(world.alice.client, "list_protected_queries", "protectedQueries",
                       membershipIdentifier=world.mid(world.alice))
    assert [q["id"] for q in listed][:2] == [second["id"], first["id"]]  # newest first
    assert listed[0]["receiverConfigurations"] == [{"analysisType": "DIRECT_ANALYSIS", "configurationDetails": {
        "directAnalysisConfigurationDetails": {"receiverAccountIds": [world.alice.id]}}}]
    failed = world.alice.client.list_protected_queries(membershipIdentifier=world.mid(world.alice),
                                                       status="FAILED")["protectedQueries"]
    assert [q["id"] for q in failed] == [second["id"]]
    # bob neither ran nor receives them: his membership does not see them; a stranger's call is refused
    assert world.bob.client.list_protected_queries(membershipIdentifier=world.mid(world.bob))["protectedQueries"] == []
    raises("ResourceNotFoundException", world.bob.client.get_protected_query,
           membershipIdentifier=world.mid(world.bob), protectedQueryIdentifier=first["id"])
    raises("ResourceNotFoundException", party().client.get_protected_query,
           membershipIdentifier=world.mid(world.alice), protectedQueryIdentifier=first["id"])


def test_only_an_active_member_who_can_query_starts_queries(world):
    raises("AccessDeniedException", world.bob.client.start_protected_query, type="SQL",
           membershipIdentifier=world.mid(world.bob), sqlParameters={"queryString": "SELECT 1"})
    response = raises("ValidationException", world.alice.client.start_protected_query, type="SQL",
                      membershipIdentifier=world.mid(world.alice),
                      sqlParameters={"queryString": "SELECT 1", "analysisTemplateArn": "arn:aws:cleanrooms:us-east-1:"
                                     "111111111111:membership/" + str(uuid.uuid4()) + "/analysistemplate/" +
                                     str(uuid.uuid4())})
    assert "not both" in response["Error"]["Message"]
    raises("ValidationException", world.alice.client.start_protected_query, type="SQL",
           membershipIdentifier=world.mid(world.alice), sqlParameters={"queryString": "SELECT 1"},
           queryComputePayerAccountId=world.bob.id)
    raises("ResourceNotFoundException", world.alice.client.start_protected_query, type="SQL",
           membershipIdentifier=str(uuid.uuid4()), sqlParameters={"queryString": "SELECT 1"})


def test_results_to_another_member_need_its_ability_and_settings(server, party, tmp_path):
    world = build_world(server, party, tmp_path, alice_abilities=("CAN_QUERY",), bob_abilities=("CAN_RECEIVE_RESULTS",),
                        receivers=["bob"])
    sql = "SELECT c.segment, COUNT(DISTINCT c.user_id) AS n FROM customers c GROUP BY c.segment"
    to_bob = {"outputConfiguration": {"member": {"accountId": world.bob.id}}}
    # alice cannot receive results herself, and bob has not said where he receives them
    assert "defaultResultConfiguration" in raises("ValidationException", start, world, sql)["Error"]["Message"]
    assert world.bob.id in raises("ValidationException", start, world, sql, resultConfiguration=to_bob)[
        "Error"]["Message"]
    world.bob.client.update_membership(membershipIdentifier=world.mid(world.bob), defaultResultConfiguration={
        "outputConfiguration": {"s3": {"bucket": "bob-results", "resultFormat": "PARQUET"}}})
    query = start(world, sql, resultConfiguration=to_bob)
    done = wait(world.alice.client, world.mid(world.alice), query["id"])
    assert done["status"] == "SUCCESS" and done["result"] == {"output": {"memberList": [{"accountId": world.bob.id}]}}
    # bob sees the query meant for him, and its result is where his settings say
    seen = world.bob.client.get_protected_query(membershipIdentifier=world.mid(world.bob),
                                                protectedQueryIdentifier=query["id"])["protectedQuery"]
    assert seen["id"] == query["id"] and seen["membershipId"] == world.mid(world.alice)
    assert seen["membershipArn"] == world.memberships[world.alice.id]["arn"]
    listed = world.bob.client.list_protected_queries(membershipIdentifier=world.mid(world.bob))["protectedQueries"]
    assert [(q["id"], q["membershipArn"]) for q in listed] == [(query["id"], seen["membershipArn"])]
    delivered = read_result((server.data_dir / "results" / "bob-results" / query["id"]).as_uri())
    assert sorted(tuple(r.values()) for r in delivered.to_pylist()) == expected(
        world, "SELECT segment, COUNT(DISTINCT user_id) FROM customers GROUP BY segment")
    # queries are history: the receiver can still leave the collaboration, and the runner keeps its query
    world.bob.client.delete_configured_table_association(
        membershipIdentifier=world.mid(world.bob),
        configuredTableAssociationIdentifier=world.associations["impressions"]["id"])
    world.bob.client.delete_membership(membershipIdentifier=world.mid(world.bob))
    assert wait(world.alice.client, world.mid(world.alice), query["id"]) == done


def test_receivers_must_be_allowed_by_every_table(server, party, tmp_path):
    world = build_world(server, party, tmp_path, bob_abilities=("CAN_RECEIVE_RESULTS",))  # receivers: alice only
    world.bob.client.update_membership(membershipIdentifier=world.mid(world.bob), defaultResultConfiguration={
        "outputConfiguration": {"s3": {"bucket": "bob-results", "resultFormat": "CSV"}}})
    refused = start(world, "SELECT COUNT(DISTINCT user_id) AS n FROM customers",
                    resultConfiguration={"outputConfiguration": {"member": {"accountId": world.bob.id}}})
    assert refused["status"] == "FAILED" and refused["error"]["code"] == "RESOURCE_ACCESS_DENIED"
    assert world.bob.id in refused["error"]["message"] and "customers" in refused["error"]["message"]


def test_cancel_before_and_after_the_end(world):
    done = run(world, "SELECT COUNT(DISTINCT user_id) AS n FROM customers")
    assert done["status"] == "SUCCESS"
    response = raises("ConflictException", world.alice.client.update_protected_query,
                      membershipIdentifier=world.mid(world.alice), protectedQueryIdentifier=done["id"],
                      targetStatus="CANCELLED")
    assert response["reason"] == "INVALID_STATE"


SLOW = ("SELECT SUM(a.clicks * b.clicks * c.clicks * d.clicks) AS s FROM impressions a CROSS JOIN impressions b "
        "CROSS JOIN impressions c CROSS JOIN impressions d")


def test_cancel_stops_a_running_query(server, party, tmp_path):
    world = build_world(server, party, tmp_path, rule_type="CUSTOM")
    query = start(world, SLOW)
    mid = world.mid(world.alice)
    assert wait_for(world.alice.client, mid, query["id"], {"STARTED"} | FINAL)["status"] == "STARTED"
    cancelling = world.alice.client.update_protected_query(membershipIdentifier=mid, protectedQueryIdentifier=query["id"],
                                                           targetStatus="CANCELLED")["protectedQuery"]
    assert cancelling["status"] in ("CANCELLING", "CANCELLED")
    began = time.monotonic()
    assert wait(world.alice.client, mid, query["id"])["status"] == "CANCELLED"
    assert time.monotonic() - began < 10
    # list calls keep answering while queries run: the query path never holds the request threads
    heavy = start(world, SLOW)
    began = time.monotonic()
    for _ in range(20):
        world.alice.client.list_protected_queries(membershipIdentifier=mid)
    assert wait_for(world.alice.client, mid, heavy["id"], {"STARTED"} | FINAL)["status"] == "STARTED"
    world.alice.client.update_protected_query(membershipIdentifier=mid, protectedQueryIdentifier=heavy["id"],
                                              targetStatus="CANCELLED")
    assert wait(world.alice.client, mid, heavy["id"])["status"] == "CANCELLED"


def test_a_submitted_query_is_cancelled_at_once(server, party, tmp_path):
    world = build_world(server, party, tmp_path, rule_type="CUSTOM")
    mid = world.mid(world.alice)
    # two slow queries fill this server's two query slots; the third waits SUBMITTED
    slow = [start(world, SLOW) for _ in range(2)]
    for q in slow:
        wait_for(world.alice.client, mid, q["id"], {"STARTED"} | FINAL)
    waiting = start(world, SLOW)
    assert world.alice.client.get_protected_query(membershipIdentifier=mid, protectedQueryIdentifier=waiting["id"])[
        "protectedQuery"]["status"] == "SUBMITTED"
    cancelled = world.alice.client.update_protected_query(membershipIdentifier=mid, protectedQueryIdentifier=waiting["id"],
                                                          targetStatus="CANCELLED")["protectedQuery"]
    assert cancelled["status"] == "CANCELLED"
    for q in slow:
        world.alice.client.update_protected_query(membershipIdentifier=mid, protectedQueryIdentifier=q["id"],
                                                  targetStatus="CANCELLED")
        assert wait(world.alice.client, mid, q["id"])["status"] == "CANCELLED"


# ------------------------------------------------------------------------------------------------ templates, quotas, logs


def test_analysis_templates_run_with_typed_parameters(world):
    sql = ("SELECT c.segment, COUNT(DISTINCT i.user_id) AS users FROM customers c INNER JOIN impressions i "
           "ON c.user_id = i.user_id WHERE c.age_band >= :band GROUP BY c.segment")
    template = world.alice.client.create_analysis_template(
        membershipIdentifier=world.mid(world.alice), name="by segment", format="SQL", source={"text": sql},
        analysisParameters=[{"name": "band", "type": "INTEGER", "defaultValue": "10"}])["analysisTemplate"]

    def run_template(**parameters):
        query = world.alice.client.start_protected_query(
            type="SQL", membershipIdentifier=world.mid(world.alice),
            sqlParameters={"analysisTemplateArn": template["arn"], **({"parameters": parameters} if parameters else {})}
        )["protectedQuery"]
        return wait(world.alice.client, world.mid(world.alice), query["id"])

    plain = ("SELECT c.segment, COUNT(DISTINCT i.user_id) FROM customers c JOIN impressions i ON c.user_id = i.user_id "
             "WHERE c.age_band >= {} GROUP BY c.segment HAVING COUNT(DISTINCT i.user_id) >= 30")
    assert rows(run_template()) == expected(world, plain.format(10))  # the template's default
    assert rows(run_template(band="20")) == expected(world, plain.format(20))
    for hostile in ("10 OR 1=1", "10; DROP TABLE customers", "0) OR (1=1"):  # a value is one typed literal, never SQL
        response = raises("ValidationException", run_template, band=hostile)
        assert "band" in response["Error"]["Message"]
    raises("ValidationException", run_template, nope="1")
    raises("ValidationException", world.alice.client.start_protected_query, type="SQL",
           membershipIdentifier=world.mid(world.alice), sqlParameters={"queryString": "SELECT 1",
                                                                       "parameters": {"band": "1"}})


def test_concurrent_queries_are_limited_per_account(server, party, tmp_path):
    world = build_world(server, party, tmp_path, rule_type="CUSTOM")
    mid = world.mid(world.alice)
    running = [start(world, SLOW) for _ in range(5)]
    response = raises("ServiceQuotaExceededException", start, world, SLOW)
    assert response["quotaName"] == "Concurrent SQL protected queries per membership" and response["quotaValue"] == 5
    for query in running:
        world.alice.client.update_protected_query(membershipIdentifier=mid, protectedQueryIdentifier=query["id"],
                                                  targetStatus="CANCELLED")
    assert {wait(world.alice.client, mid, q["id"])["status"] for q in running} == {"CANCELLED"}
    assert start(world, "SELECT COUNT(*) AS n FROM customers")["status"] == "SUBMITTED"  # room again


def test_query_logs_record_every_query_for_members_who_log(server, party, tmp_path):
    import json
    import subprocess
    import sys

    world = build_world(server, party, tmp_path, query_log="ENABLED")
    ok = run(world, "SELECT COUNT(DISTINCT user_id) AS n FROM customers")
    refused = start(world, "SELECT email FROM customers")

    def log(who) -> list[dict]:
        printed = subprocess.run([sys.executable, "-m", "opencleanrooms", "query", "log", *server.storage_args,
                                  "--membership-id", world.mid(who)],
                                 check=True, capture_output=True, text=True).stdout
        return [json.loads(line) for line in printed.splitlines()]

    entries = log(world.alice)
    assert [(e["query_id"], e["status"], e["error_code"]) for e in entries] == [
        (refused["id"], "FAILED", "MALFORMED_QUERY"), (ok["id"], "SUCCESS", None)]
    assert entries[1]["query_text"] == "SELECT COUNT(DISTINCT user_id) AS n FROM customers"
    assert entries[1]["runner_account_id"] == world.alice.id and entries[1]["end_time"] >= entries[1]["create_time"]
    assert log(world.bob) == []  # bob's table was not read


def test_access_budgets_are_spent_by_queries_and_refuse_when_empty(world):
    bob_mid = world.mid(world.bob)
    arn = (f"arn:aws:cleanrooms:us-east-1:{world.bob.id}:membership/{bob_mid}/configuredtableassociation/"
           f"{world.associations['impressions']['id']}")
    world.bob.client.create_privacy_budget_template(
        membershipIdentifier=bob_mid, privacyBudgetType="ACCESS_BUDGET", autoRefresh="NONE",
        parameters={"accessBudget": {"resourceArn": arn, "budgetParameters": [{"type": "LIFETIME", "budget": 2}]}})
    joined = ("SELECT c.segment, COUNT(DISTINCT i.user_id) AS users FROM customers c INNER JOIN impressions i "
              "ON c.user_id = i.user_id GROUP BY c.segment")
    assert run(world, "SELECT COUNT(DISTINCT user_id) AS n FROM customers")["status"] == "SUCCESS"  # not budgeted
    assert [run(world, joined)["status"] for _ in range(2)] == ["SUCCESS", "SUCCESS"]
    refused = start(world, joined)
    assert refused["status"] == "FAILED" and refused["error"]["code"] == "INVALID_RESOURCE"
    assert "budget" in refused["error"]["message"].lower()
    [budget] = world.alice.client.list_privacy_budgets(membershipIdentifier=world.mid(world.alice),
                                                       privacyBudgetType="ACCESS_BUDGET")["privacyBudgetSummaries"]
    assert budget["budget"]["accessBudget"]["aggregateRemainingBudget"] == 0
    assert start(world, "SELECT COUNT(DISTINCT user_id) AS n FROM customers")["status"] == "SUBMITTED"
