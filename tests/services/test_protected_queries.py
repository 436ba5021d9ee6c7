"""The cost of reading configured table associations on the query path, in process over a private database of the
backend under test: StartProtectedQuery (with SQL or an analysis template) and PopulateIntermediateTable run the
same SQL statements whether the collaboration stores one association or thirty, and the catalog entries of the
associations they do read are looked up in one statement.

Collaboration, membership, configured tables, their rules and associations are made by the real handlers; each
table's catalog entry points at a real Parquet file (written with DuckDB) whose column types the start reads. What
is measured is the request path: no runner runs the query.
"""

from __future__ import annotations

import time

import duckdb
import pytest

from opencleanrooms.catalog import commands as catalog_commands
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import (
    analysis_templates,
    collaborations,
    configured_tables,
    intermediate_tables,
    memberships,
    protected_queries,
    registry,
    schemas,
    table_associations,
)
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import PageTokens
from opencleanrooms.services.quotas import Quotas
from opencleanrooms.storage import protected_queries as query_store
from opencleanrooms.storage import table_associations as association_store
from opencleanrooms.storage.database import Database
from tests.support.backend import database_url
from tests.support.statements import counting

ALICE = "111111111111"
ROLE = "arn:aws:iam::111111111111:role/cleanrooms-table-access"
QUERY = "SELECT segment, COUNT(DISTINCT user_id) AS users FROM t0 GROUP BY segment"
RESULTS = {"outputConfiguration": {"s3": {"bucket": "results", "resultFormat": "CSV"}}}
CUSTOM = {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [ALICE]}


class World:
    """Alice's collaboration (she queries and receives results) and her associated tables t0, t1, ..., each a
    configured table over its own catalog entry (crm.t0, ...) with a CUSTOM rule that lets her query it."""

    def __init__(self, db: Database, data: str) -> None:
        self.db, self.data = db, data
        self.regional = data.replace("users", "regional")
        self.collaboration = collaborations.create_collaboration(self.ctx("CreateCollaboration"), {
            "members": [], "name": "c", "creatorMemberAbilities": ["CAN_QUERY", "CAN_RECEIVE_RESULTS"],
            "creatorDisplayName": "alice", "queryLogStatus": "DISABLED"})["collaboration"]
        self.membership_id = memberships.create_membership(self.ctx("CreateMembership"), {
            "collaborationIdentifier": self.collaboration["id"], "queryLogStatus": "DISABLED"})["membership"]["id"]
        self.associations: list[dict] = []

    def ctx(self, operation: str) -> RequestContext:
        return RequestContext(request_id="r", account_id=ALICE, region="us-east-1", operation=operation,
                              now=time.time(), db=self.db, tokens=PageTokens(b"k" * 32), quotas=Quotas())

    def add_tables(self, count: int) -> None:
        for _ in range(count):
            name = f"t{len(self.associations)}"
            catalog_commands.add_table(self.db, account_id=ALICE, database="crm", table=name, location=self.data)
            table = configured_tables.create_configured_table(self.ctx("CreateConfiguredTable"), {
                "name": name, "tableReference": {"glue": {"databaseName": "crm", "tableName": name}},
                "allowedColumns": ["user_id", "segment", "age"], "analysisMethod": "DIRECT_QUERY"})["configuredTable"]
            configured_tables.create_analysis_rule(self.ctx("CreateConfiguredTableAnalysisRule"), {
                "configuredTableIdentifier": table["id"], "analysisRuleType": "CUSTOM",
                "analysisRulePolicy": {"v1": {"custom": CUSTOM}}})
            association = table_associations.create_association(self.ctx("CreateConfiguredTableAssociation"), {
                "membershipIdentifier": self.membership_id, "configuredTableIdentifier": table["id"],
                "name": name, "roleArn": ROLE})["configuredTableAssociation"]
            table_associations.create_analysis_rule(self.ctx("CreateConfiguredTableAssociationAnalysisRule"), {
                "membershipIdentifier": self.membership_id, "configuredTableAssociationIdentifier": association["id"],
                "analysisRuleType": "CUSTOM",
                "analysisRulePolicy": {"v1": {"custom": {"allowedResultReceivers": [ALICE]}}}})
            self.associations.append(association)


@pytest.fixture
def world(tmp_path):
    registry.load_all()  # wires the other relations (intermediate tables) into protected queries
    data = str(tmp_path / "users.parquet")
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT printf('u%03d', i) AS user_id, ['a', 'b'][i % 2 + 1] AS segment, "
                    f"CAST(i AS BIGINT) AS age FROM range(10) t(i)) TO '{data}' (FORMAT parquet)")
    db = Database(database_url(tmp_path))
    db.migrate()
    yield World(db, data)
    db.dispose()


def start(world: World, sql: str = QUERY) -> tuple[dict, list]:
    with counting([]) as statements:
        out = protected_queries.start_protected_query(world.ctx("StartProtectedQuery"), {
            "membershipIdentifier": world.membership_id, "sqlParameters": {"queryString": sql},
            "resultConfiguration": RESULTS})
    return out["protectedQuery"], statements


def test_starting_a_query_costs_the_same_with_one_or_thirty_stored_associations(world):
    world.add_tables(1)
    first, with_one = start(world)
    world.add_tables(29)
    second, with_thirty = start(world)
    assert first["status"] == second["status"] == "SUBMITTED", (first.get("error"), second.get("error"))
    assert len(with_thirty) == len(with_one), f"{len(with_one)} statements with one table, {len(with_thirty)} with 30"
    with world.db.read() as conn:  # the plan read the table the query names, from its catalog entry
        spec = query_store.get(conn, second["id"])["spec"]
    assert [(t["label"], t["database"], t["table"], t["columns"]) for t in spec["tables"]] == [
        ("t0", "crm", "t0", ["user_id", "segment", "age"])]


def test_starting_an_analysis_template_costs_the_same_with_one_or_thirty_stored_associations(world):
    world.add_tables(1)
    template = analysis_templates.create_template(world.ctx("CreateAnalysisTemplate"), {
        "membershipIdentifier": world.membership_id, "name": "by segment", "format": "SQL",
        "source": {"text": "SELECT segment, COUNT(DISTINCT user_id) AS users FROM t0 WHERE segment <> :skip "
                           "GROUP BY segment"},
        "analysisParameters": [{"name": "skip", "type": "VARCHAR", "defaultValue": "c"}]})["analysisTemplate"]

    def run() -> tuple[dict, list]:
        with counting([]) as statements:
            out = protected_queries.start_protected_query(world.ctx("StartProtectedQuery"), {
                "membershipIdentifier": world.membership_id, "resultConfiguration": RESULTS,
                "sqlParameters": {"analysisTemplateArn": template["arn"], "parameters": {"skip": "a"}}})
        return out["protectedQuery"], statements

    first, with_one = run()
    world.add_tables(29)
    second, with_thirty = run()
    assert first["status"] == second["status"] == "SUBMITTED", (first.get("error"), second.get("error"))
    assert len(with_thirty) == len(with_one), f"{len(with_one)} statements with one table, {len(with_thirty)} with 30"


def test_populating_an_intermediate_table_costs_the_same_with_one_or_thirty_stored_associations(world):
    def populate() -> list:
        """A new intermediate table populated from t0 (each once: a population not run yet blocks the next)."""
        table = intermediate_tables.create_intermediate_table(world.ctx("CreateIntermediateTable"), {
            "membershipIdentifier": world.membership_id, "name": f"segments {len(world.associations)}",
            "populationAnalysisConfiguration": {"sqlParameters": {
                "queryString": "SELECT user_id AS user_id, segment AS segment FROM t0"}}})["intermediateTable"]
        with counting([]) as statements:
            out = intermediate_tables.populate_intermediate_table(world.ctx("PopulateIntermediateTable"), {
                "membershipIdentifier": world.membership_id, "intermediateTableIdentifier": table["id"]})
        with world.db.read() as conn:
            query = query_store.get(conn, out["analysisId"])
        assert query["status"] == "SUBMITTED", query["doc"].get("error")
        assert query["spec"]["intermediate"]["table_id"] == table["id"]
        return statements

    world.add_tables(1)
    with_one = populate()
    world.add_tables(29)
    with_thirty = populate()
    assert len(with_thirty) == len(with_one), f"{len(with_one)} statements with one table, {len(with_thirty)} with 30"


def test_a_join_of_two_named_tables_among_thirty_reads_those_two(world):
    world.add_tables(30)
    sql = ("SELECT a.segment, SUM(b.age) AS total FROM t7 a JOIN T21 b ON a.user_id = b.user_id "
           "GROUP BY a.segment")
    query, statements = start(world, sql)
    assert query["status"] == "SUBMITTED", query.get("error")
    _, alone = start(world, QUERY)
    assert len(statements) == len(alone)  # two tables named cost the statements of one: lookups are batched
    with world.db.read() as conn:
        spec = query_store.get(conn, query["id"])["spec"]
    assert sorted(t["label"] for t in spec["tables"]) == ["t21", "t7"]


def test_names_that_are_no_association_are_refused_as_before(world):
    world.add_tables(3)
    query, _ = start(world, "SELECT COUNT(DISTINCT user_id) AS n FROM orders")
    assert query["status"] == "FAILED"
    assert query["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert query["error"]["message"] == "Table `orders` is not a table associated with this collaboration."
    long_name = "x" * 300  # longer than any stored name (the column is 128 characters)
    query, _ = start(world, f"SELECT COUNT(DISTINCT user_id) AS n FROM `{long_name}`")
    assert query["error"]["code"] == "RESOURCE_NOT_FOUND", query["error"]
    query, _ = start(world, "WITH t1 AS (SELECT user_id, segment FROM t2) SELECT segment, COUNT(DISTINCT user_id) "
                            "AS n FROM t1 GROUP BY segment")
    assert query["status"] == "SUBMITTED", query.get("error")
    with world.db.read() as conn:  # the CTE named like an association is the CTE: only t2 is read
        assert query_store.get(conn, query["id"])["spec"]["table_names"] == ["t2"]


def test_catalog_sources_agrees_with_catalog_source_in_one_statement(world):
    world.add_tables(5)
    catalog_commands.add_table(world.db, account_id=ALICE, database="crm", table="t3", region="us-east-1",
                               location=world.regional)  # the region's own entry wins over any-region
    catalog_commands.remove_table(world.db, account_id=ALICE, database="crm", table="t4")
    with world.db.read() as conn:
        rows = association_store.schemas_by_names(conn, world.collaboration["id"], ["t0", "t3", "t4", "nowhere"])
        with counting([]) as statements:
            batched = schemas.catalog_sources(conn, rows)
        one_by_one = {name: schemas.catalog_source(conn, row) for name, row in rows.items()}
    assert len(statements) == 1, statements
    assert batched == one_by_one
    assert batched["t3"].location == world.regional and batched["t4"] is None
    assert batched["t0"].location == world.data


def test_a_query_text_over_the_sql_engines_limit_is_refused_before_any_table_is_read(world):
    """90 KB on the Clean Rooms SQL engine: a longer text is a ValidationException, decided first (submit checks it
    before parsing the text and reading its tables: that work would be wasted on a text that cannot run)."""
    world.add_tables(1)
    long_sql = QUERY + " " + "-" * (protected_queries.CLEAN_ROOMS_SQL_MAX_QUERY - len(QUERY))
    with counting([]) as statements, pytest.raises(ServiceError) as info:
        protected_queries.start_protected_query(world.ctx("StartProtectedQuery"), {
            "membershipIdentifier": world.membership_id, "sqlParameters": {"queryString": long_sql},
            "resultConfiguration": RESULTS})
    assert info.value.code == "ValidationException"
    assert f"at most {protected_queries.CLEAN_ROOMS_SQL_MAX_QUERY}" in info.value.message
    assert not [s for s in statements if "association" in s or "catalog" in s], statements
