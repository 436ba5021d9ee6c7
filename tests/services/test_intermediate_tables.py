"""The cost of reading intermediate tables on the query path, in process over a private database of the backend under
test: StartProtectedQuery runs the same SQL statements whether the collaboration stores one intermediate table or
thirty, GetIntermediateTable the same whatever else the collaboration stores, and schemas report an intermediate
table's status as of the request's clock.

Collaboration, membership, tables and rules are made by the real handlers. A population's protected query and
version are written through the storage functions PopulateIntermediateTable and the runner use, so that no query
engine is needed: what is measured is the request path, not the population.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

from opencleanrooms.services import (
    collaborations,
    intermediate_tables,
    memberships,
    protected_queries,
    registry,
)
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import PageTokens
from opencleanrooms.services.quotas import Quotas
from opencleanrooms.storage import intermediate_tables as store
from opencleanrooms.storage import protected_queries as query_store
from opencleanrooms.storage.database import Database
from tests.support.backend import database_url
from tests.support.statements import counting

ALICE = "111111111111"
COLUMNS = [["user_id", "string"], ["segment", "string"]]
QUERY = "SELECT segment, COUNT(DISTINCT user_id) AS users FROM t0 GROUP BY segment"
RESULTS = {"outputConfiguration": {"s3": {"bucket": "results", "resultFormat": "CSV"}}}


class World:
    """Alice's collaboration (she queries and receives results) and her intermediate tables t0, t1, ..."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.collaboration = collaborations.create_collaboration(self.ctx("CreateCollaboration"), {
            "members": [], "name": "c", "creatorMemberAbilities": ["CAN_QUERY", "CAN_RECEIVE_RESULTS"],
            "creatorDisplayName": "alice", "queryLogStatus": "DISABLED"})["collaboration"]
        self.membership_id = memberships.create_membership(self.ctx("CreateMembership"), {
            "collaborationIdentifier": self.collaboration["id"], "queryLogStatus": "DISABLED"})["membership"]["id"]
        self.tables: list[dict] = []

    def ctx(self, operation: str, now: float | None = None) -> RequestContext:
        return RequestContext(request_id="r", account_id=ALICE, region="us-east-1", operation=operation,
                              now=time.time() if now is None else now, db=self.db, tokens=PageTokens(b"k" * 32),
                              quotas=Quotas())

    def add_tables(self, count: int) -> None:
        """More tables, each populated and with a CUSTOM rule that lets Alice query it."""
        for _ in range(count):
            name = f"t{len(self.tables)}"
            table = intermediate_tables.create_intermediate_table(self.ctx("CreateIntermediateTable"), {
                "membershipIdentifier": self.membership_id, "name": name,
                "populationAnalysisConfiguration": {"sqlParameters": {"queryString": f"SELECT * FROM base_{name}"}}},
            )["intermediateTable"]
            self.populate(table["id"], f"file:///data/{name}/v1")
            intermediate_tables.create_analysis_rule(self.ctx("CreateIntermediateTableAnalysisRule"), {
                "membershipIdentifier": self.membership_id, "intermediateTableIdentifier": table["id"],
                "analysisRuleType": "CUSTOM", "analysisRulePolicy": {"v1": {"custom": {
                    "allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": [ALICE],
                    "allowedResultReceivers": [ALICE]}}}})
            self.tables.append(table)

    def populate(self, table_id: str, location: str | None, now: float | None = None) -> str:
        """A population's query and version as PopulateIntermediateTable writes them; with a location, marked
        populated as the runner marks it when the query succeeds."""
        now = time.time() if now is None else now
        query_id = str(uuid.uuid4())
        with self.db.write() as conn:
            query_store.insert(conn, {
                "id": query_id, "region": "us-east-1", "account_id": ALICE,
                "collaboration_id": self.collaboration["id"], "membership_id": self.membership_id,
                "status": "SUCCESS" if location else "FAILED", "create_time": now, "update_time": now, "doc": {},
                "spec": {}}, [self.membership_id], [])
            store.insert_version(conn, {"id": str(uuid.uuid4()), "table_id": table_id, "analysis_id": query_id,
                                        "create_time": now, "expiration_time": now + 7 * 86400, "doc": {}})
            if location:
                store.mark_populated(conn, query_id, now, location, COLUMNS)
        return query_id


@pytest.fixture
def world(tmp_path):
    registry.load_all()  # wires the intermediate tables into protected queries and schemas
    db = Database(database_url(tmp_path))
    db.migrate()
    yield World(db)
    db.dispose()


def start(world: World, sql: str = QUERY) -> tuple[dict, list]:
    with counting([]) as statements:
        out = protected_queries.start_protected_query(world.ctx("StartProtectedQuery"), {
            "membershipIdentifier": world.membership_id, "sqlParameters": {"queryString": sql},
            "resultConfiguration": RESULTS})
    return out["protectedQuery"], statements


def test_starting_a_query_costs_the_same_with_one_or_thirty_stored_tables(world):
    world.add_tables(1)
    first, with_one = start(world)
    world.add_tables(29)
    second, with_thirty = start(world)
    assert first["status"] == second["status"] == "SUBMITTED", (first.get("error"), second.get("error"))
    assert len(with_thirty) == len(with_one), f"{len(with_one)} statements with one table, {len(with_thirty)} with 30"
    with world.db.read() as conn:  # the plan read the table the query names, at its populated location
        spec = query_store.get(conn, second["id"])["spec"]
    assert [(t["label"], t["location"], t["columns"]) for t in spec["tables"]] == [
        ("t0", "file:///data/t0/v1", ["user_id", "segment"])]


def test_query_tables_reads_only_the_named_tables_in_two_statements(world):
    world.add_tables(30)
    world.populate(world.tables[5]["id"], "file:///data/t5/v2")  # the newest populated version is the active one
    world.populate(world.tables[5]["id"], None)  # a failed population after it changes nothing
    ctx = world.ctx("StartProtectedQuery")
    with world.db.read() as conn, counting([]) as statements:
        found = intermediate_tables.query_tables(conn, ctx, world.collaboration, {"t0", "t5", "j", "nowhere"})
    assert len(statements) == 2, statements
    assert sorted(found) == ["t0", "t5"]
    assert found["t5"].location == "file:///data/t5/v2"
    assert found["t5"].info.columns == (("user_id", "string"), ("segment", "string"))
    assert found["t5"].info.unavailable is None and found["t5"].info.rule_type == "CUSTOM"
    with world.db.read() as conn, counting([]) as statements:
        assert intermediate_tables.query_tables(conn, ctx, world.collaboration, frozenset()) == {}
    assert statements == []


def test_active_versions_agrees_with_active_version(world):
    world.add_tables(3)
    t0, t1, t2 = (table["id"] for table in world.tables)
    world.populate(t0, "file:///data/t0/v2")
    world.populate(t1, None)
    with world.db.write() as conn:  # a table never populated successfully has no active version
        store.insert_version(conn, {"id": str(uuid.uuid4()), "table_id": "never", "analysis_id": "none",
                                    "create_time": 0.0, "expiration_time": 1.0, "doc": {}})
    with world.db.read() as conn:
        batched = store.active_versions(conn, [t0, t1, t2, "never"])
        one_by_one = {table_id: store.active_version(conn, table_id) for table_id in (t0, t1, t2, "never")}
    assert "never" not in batched and one_by_one.pop("never") is None
    assert {k: dict(v) for k, v in batched.items()} == {k: dict(v) for k, v in one_by_one.items()}
    assert batched[t0]["doc"]["location"] == "file:///data/t0/v2"


def _populated_from(world: World, table: dict, parents: list[dict]) -> None:
    """Record `parents` as what `table` was populated from, as PopulateIntermediateTable does when it accepts a
    population (its doc's dependencies, and their index)."""
    dependencies = [{"id": p["id"], "name": p["name"], "type": "INTERMEDIATE_TABLE", "parentType": "DIRECT",
                     "creatorAccountId": ALICE} for p in parents]
    with world.db.write() as conn:
        row = store.by_id(conn, table["id"])
        store.update(conn, row["id"], doc=dict(row["doc"], dependencies=dependencies))
        store.set_dependencies(conn, row["id"], dependencies)


def get_table(world: World, table: dict) -> tuple[dict, list]:
    with counting([]) as statements:
        out = intermediate_tables.get_intermediate_table(world.ctx("GetIntermediateTable"), {
            "membershipIdentifier": world.membership_id, "intermediateTableIdentifier": table["id"]})
    return out["intermediateTable"], statements


def test_get_reads_only_the_tables_children_however_many_the_collaboration_has(world):
    """GetIntermediateTable lists the tables populated directly from it (childResources): it finds them through
    the dependency index, not by reading every intermediate table of the collaboration."""
    world.add_tables(3)
    parent, child, grandchild = world.tables
    _populated_from(world, child, [parent])
    _populated_from(world, grandchild, [child])
    first, with_three = get_table(world, parent)
    world.add_tables(30)
    second, with_thirty_three = get_table(world, parent)
    assert len(with_thirty_three) == len(with_three), (len(with_three), len(with_thirty_three))
    for statement in with_thirty_three:  # each read of the tables is of named ones: by id, or by dependency
        if re.search(r"\bintermediate_tables\b", statement):
            assert "intermediate_tables.id =" in statement or "intermediate_table_dependencies" in statement, \
                statement
    assert first == second
    assert [c["resourceName"] for c in second["childResources"]] == ["t1"]  # the grandchild is not a direct child
    with world.db.read() as conn:
        cid = world.collaboration["id"]
        assert [r["name"] for r in store.dependents(conn, cid, parent["id"])] == ["t1"]
        assert [r["name"] for r in store.dependents(conn, cid, child["id"], direct=True)] == ["t2"]
    _populated_from(world, child, [])  # populated again, from elsewhere: no longer a child
    assert "childResources" not in get_table(world, parent)[0]


def test_schemas_report_the_status_as_of_the_request_clock(world):
    world.add_tables(1)
    with world.db.read() as conn:
        version = store.active_version(conn, world.tables[0]["id"])
    cid = world.collaboration["id"]
    for now, status, codes in ((version["expiration_time"] - 1, "READY", []),
                               (version["expiration_time"], "NOT_READY",
                                ["INTERMEDIATE_TABLE_RETENTION_PERIOD_EXPIRED"])):
        with world.db.read() as conn:
            one = intermediate_tables.Relations.by_name(conn, cid, "t0", now=now)
            batch = intermediate_tables.Relations.by_names(conn, cid, ["t0"], now=now)["t0"]
            page = intermediate_tables.Relations.page(conn, cid, None, 10, now=now)[0][0]
        for row in (one, batch, page):
            detail = row["schema"]["schemaStatusDetails"][0]
            assert detail["status"] == status
            assert [reason["code"] for reason in detail.get("reasons", [])] == codes
