"""The policy layer's bypass corpus, over HTTP: every attempt started as a protected query is refused, nothing runs.

tests/policy/test_bypass_corpus.py proves each attempt is refused by `plan_query`; this module proves the server
puts every one of them through that check. Each distinct set of tables of the corpus becomes a real collaboration:
`sales` (the other member's, Parquet) and `mine` (the runner's), with the corpus's rules, the corpus's account ids
replaced by the real ones. Attempts that need an analysis template or parameters, or tables the world cannot build,
are left to the unit corpus.
"""

from __future__ import annotations

import json

import duckdb
import pytest

from opencleanrooms.catalog import commands as catalog_commands
from tests.e2e.test_protected_queries import wait
from tests.policy import helpers
from tests.policy.test_bypass_corpus import CORPUS, REASON

ROLE = "arn:aws:iam::111122223333:role/cleanrooms-table-access"
MEMBER = {"AGGREGATION": "aggregation", "LIST": "list", "CUSTOM": "custom"}


def _http_cases():
    cases = []
    for entry in CORPUS:
        description, tables, sql, *extra = entry
        names = {t.name for t in tables}
        if extra or not names <= {"sales", "mine"} or any(t.rule_type is None for t in tables):
            continue
        cases.append((description, tables, sql))
    return cases


CASES = _http_cases()


def _world_key(tables) -> str:
    return json.dumps(sorted((t.name, t.owner_account_id, t.rule_type, t.rule) for t in tables), sort_keys=True)


class Worlds:
    """One collaboration per distinct table set, built on first use."""

    def __init__(self, server, party, directory) -> None:
        self.server, self.party, self.directory = server, party, directory
        self.built: dict[str, tuple] = {}
        self.data = directory / "corpus.parquet"
        with duckdb.connect() as con:
            con.execute(f"""COPY (SELECT 'u' || (i % 40) AS id, 'h' || (i % 40) AS hashed_email,
                               ['eu','us'][i % 2 + 1] AS region, ['a','b','c'][i % 3 + 1] AS segment,
                               DATE '2024-01-01' + CAST(i % 10 AS INTEGER) AS day, (i % 17) * 1.5 AS amount,
                               CAST(i % 5 AS BIGINT) AS visits, 'p' || i || '@x' AS email FROM range(120) t(i))
                            TO '{self.data}' (FORMAT parquet)""")

    def get(self, tables):
        key = _world_key(tables)
        if key not in self.built:
            self.built[key] = self._build(tables)
        return self.built[key]

    def _build(self, tables):
        alice, bob = self.party(), self.party()
        ids = {helpers.RUNNER: alice.id, helpers.OTHER: bob.id}
        collaboration = alice.client.create_collaboration(
            name="corpus", description="bypass attempts", creatorDisplayName="Runner", queryLogStatus="DISABLED",
            creatorMemberAbilities=["CAN_QUERY", "CAN_RECEIVE_RESULTS"],
            members=[{"accountId": bob.id, "displayName": "Other", "memberAbilities": []}])["collaboration"]
        result = {"outputConfiguration": {"s3": {"bucket": "corpus-results", "resultFormat": "CSV"}}}
        memberships = {
            alice.id: alice.client.create_membership(collaborationIdentifier=collaboration["id"],
                                                     queryLogStatus="DISABLED",
                                                     defaultResultConfiguration=result)["membership"],
            bob.id: bob.client.create_membership(collaborationIdentifier=collaboration["id"],
                                                 queryLogStatus="DISABLED")["membership"]}
        for info in tables:
            owner = alice if info.owner_account_id == helpers.RUNNER else bob
            catalog_commands.add_table(self.server.db, account_id=owner.id, database="corpus", table=info.name,
                                       location=str(self.data))
            rule = json.loads(json.dumps(info.rule).replace(helpers.RUNNER, alice.id).replace(helpers.OTHER, bob.id))
            for threshold in rule.get("aggregationThresholds") or []:  # required by the model; the policy's default
                threshold.setdefault("allowedAggregateExpressionType", "COLUMNS_ONLY")
            if info.rule_type == "CUSTOM" and not {"ANY_QUERY", "ANY_JOB"} & set(rule["allowedAnalyses"]):
                rule.pop("allowedAnalysisProviders", None)  # templates or providers, never both (CreateRule)
            table = owner.client.create_configured_table(
                name=info.name, tableReference={"glue": {"databaseName": "corpus", "tableName": info.name}},
                allowedColumns=[c for c, _ in info.columns], analysisMethod="DIRECT_QUERY")["configuredTable"]
            owner.client.create_configured_table_analysis_rule(
                configuredTableIdentifier=table["id"], analysisRuleType=info.rule_type,
                analysisRulePolicy={"v1": {MEMBER[info.rule_type]: rule}})
            association = owner.client.create_configured_table_association(
                membershipIdentifier=memberships[owner.id]["id"], configuredTableIdentifier=table["id"],
                name=info.name, roleArn=ROLE)["configuredTableAssociation"]
            owner.client.create_configured_table_association_analysis_rule(
                membershipIdentifier=memberships[owner.id]["id"], configuredTableAssociationIdentifier=association["id"],
                analysisRuleType=info.rule_type,
                analysisRulePolicy={"v1": {MEMBER[info.rule_type]: {"allowedResultReceivers": [alice.id]}}})
        return alice, memberships[alice.id]["id"], ids


@pytest.fixture(scope="module")
def worlds(server, tmp_path_factory):
    from tests.conftest import Party

    return Worlds(server, lambda: Party(server), tmp_path_factory.mktemp("corpus"))


def test_the_http_corpus_is_large():
    assert len(CASES) >= 60, len(CASES)


@pytest.mark.parametrize("description,tables,sql", CASES, ids=[c[0] for c in CASES])
def test_bypass_attempt_is_refused_over_http(worlds, server, description, tables, sql):
    alice, membership_id, _ = worlds.get(tables)
    query = alice.client.start_protected_query(type="SQL", membershipIdentifier=membership_id,
                                               sqlParameters={"queryString": sql})["protectedQuery"]
    assert query["status"] == "FAILED", (description, query)
    assert "result" not in query and query["error"]["retry"] == {"retryable": False}
    if description in REASON:
        assert REASON[description].lower() in query["error"]["message"].lower(), (description, query["error"])
    assert wait(alice.client, membership_id, query["id"]) == query  # it stays refused: no runner picked it up
    assert not (server.data_dir / "results" / "corpus-results" / query["id"]).exists()
