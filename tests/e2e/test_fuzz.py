"""Model-driven fuzzing of every implemented operation over signed raw HTTP.

Requests come from ``tests.support.fuzzgen``: valid ones built from each input shape (pointing at real resources
some of the time) and mutated ones (wrong types, missing members, out-of-range values, bad enums, 100 KB strings,
lone surrogates, nulls, unknown keys, deep nesting, bad ids and ARNs in labels, duplicate and unknown query
parameters, odd content types, bodies on GET, broken JSON, wrong methods, bad signatures). Every answer must:

* never be a 5xx (501 only for an operation the model has but the server does not implement);
* conform to the model (``conformance.check_response``: declared or common error code, modeled status, exact
  shapes; but for the constraints no answer can meet, ``rawapi.UNSATISFIABLE``) and leak no internals;
* refuse what is certainly invalid and succeed where success is certain (see ``fuzzgen`` for how that is known).

The fuzz account works first as a stranger to the victims' collaborations, then as an invitee and a member of two
of them. Victims and the fuzz account have the sample tables in their own catalogs (the fuzz account also a broken
entry, the victims a table only they have), configured tables with analysis rules, and change requests. Victims'
views (``views.snapshot``: collaborations, members, memberships, change requests, configured tables and their rules,
tags) are taken through the API before and after each phase: nothing may change but what the fuzz account may
legitimately change (its own member row, its vote on the change request it was asked to approve). The server must
still answer valid calls at the end.

Reproduce a run with ``OPENCLEANROOMS_FUZZ_SEED=<seed>``; scale it with ``OPENCLEANROOMS_FUZZ_REQUESTS=<n>``; see what
the valid requests of each operation got with ``OPENCLEANROOMS_FUZZ_VERBOSE=1``.
"""

from __future__ import annotations

import collections
import os
import random
import re
from importlib import resources

import pytest

from opencleanrooms.catalog import commands as catalog_commands
from opencleanrooms.catalog import entity_resolution
from tests.support import conformance, patterngen, wire
from tests.support.builders import create_collaboration, join, member
from tests.support.figures import figures  # noqa: F401  (fixture)
from tests.support.fuzzgen import IMPLEMENTED, MODEL, RESOURCES, Generator, Pools, pattern_problems, route
from tests.support.rawapi import RawClient, model_problems
from tests.support.server import Account
from tests.support.views import diff, snapshot, without_member, without_votes

FUZZ_REQUESTS = int(os.environ.get("OPENCLEANROOMS_FUZZ_REQUESTS", "3600"))  # both phases together
STRANGER_SHARE = 0.65  # the rest runs with the fuzz account inside victims' collaborations
FUZZ_SEED = int(os.environ.get("OPENCLEANROOMS_FUZZ_SEED", "20220217"))
VERBOSE = bool(os.environ.get("OPENCLEANROOMS_FUZZ_VERBOSE"))  # also report what valid requests got, per operation
MAX_SIGNATURE_FAILURE_SHARE = 0.10  # more would mean the harness's signing, not the server, ate the requests


class Party:
    def __init__(self, server, account: Account | None = None) -> None:
        self.account = account or server.new_account()
        self.id = self.account.account_id
        self.client = server.client(self.account)


SAMPLES = resources.files("opencleanrooms.samples")
# The sample tables (docs/catalog.md) and their columns as the catalog reports them.
CUSTOMERS = {"database": "advertiser", "table": "customers", "location": str(SAMPLES.joinpath("customers.parquet")),
             "columns": ["user_id", "email_hash", "segment", "age_band", "signup_date", "lifetime_value"]}
IMPRESSIONS = {"database": "publisher", "table": "impressions", "location": str(SAMPLES.joinpath("impressions.csv")),
               "columns": ["user_id", "campaign_id", "impression_time", "clicks", "spend"]}
# A catalog entry whose data is missing, under the server's directory (whose path must not reach the caller: see
# test_unreadable_catalog_tables_do_not_reveal_server_paths); its location is set in the world.
BROKEN = {"database": "broken", "table": "missing", "columns": ["user_id"], "readable": False}
VICTIM_ONLY = {"database": "victimdb", "table": "ledger", "location": CUSTOMERS["location"]}


def register(server, party, *tables) -> None:
    """Put tables into the account's own catalog (what `opencleanrooms catalog add` does)."""
    for t in tables:
        catalog_commands.add_table(server.db, account_id=party.id, database=t["database"], table=t["table"],
                                   location=t["location"])


def glue(table: dict) -> dict:
    return {"glue": {"databaseName": table["database"], "tableName": table["table"]}}


SNOWFLAKE = {"snowflake": {
    "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:snowflake-AbCdEf",
    "accountIdentifier": "xy12345.us-east-1", "databaseName": "SALES", "schemaName": "PUBLIC", "tableName": "ORDERS",
    "tableSchema": {"v1": [{"columnName": "order_id", "columnType": "VARCHAR"},
                           {"columnName": "amount", "columnType": "NUMBER"}]}}}
LIST_RULE = {"v1": {"list": {"joinColumns": ["user_id"], "listColumns": ["segment"]}}}
AGGREGATION_RULE = {"v1": {"aggregation": {
    "aggregateColumns": [{"columnNames": ["lifetime_value"], "function": "SUM"}], "joinColumns": ["user_id"],
    "dimensionColumns": ["segment"], "scalarFunctions": ["ROUND"],
    "outputConstraints": [{"columnName": "user_id", "minimum": 10, "type": "COUNT_DISTINCT"}]}}}
CUSTOM_RULE = {"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": ["444455556666"]}}}


def configured_table(party, reference, columns, *, rule=None, **extra) -> tuple[dict, str | None]:
    """A configured table of the party's (and its analysis rule, if given): the table and the rule's type."""
    table = party.client.create_configured_table(name=f"table of {party.id}", tableReference=reference,
                                                 allowedColumns=columns, analysisMethod="DIRECT_QUERY",
                                                 **extra)["configuredTable"]
    if rule is None:
        return table, None
    rule_type = {"list": "LIST", "aggregation": "AGGREGATION", "custom": "CUSTOM"}[next(iter(rule["v1"]))]
    party.client.create_configured_table_analysis_rule(configuredTableIdentifier=table["id"],
                                                       analysisRuleType=rule_type, analysisRulePolicy=rule)
    return party.client.get_configured_table(configuredTableIdentifier=table["id"])["configuredTable"], rule_type


def propose(creator, collaboration_id: str, account_id: str) -> dict:
    """A change request inviting `account_id`."""
    return creator.client.create_collaboration_change_request(collaborationIdentifier=collaboration_id, changes=[
        {"specificationType": "MEMBER", "specification": {"member": {
            "accountId": account_id, "memberAbilities": ["CAN_RECEIVE_RESULTS"],
            "displayName": f"new {account_id}"}}}])["collaborationChangeRequest"]


def add_tables(pools: Pools, tables, pick: str) -> None:
    for table, rule_type in tables:
        pools.add("ConfiguredTableIdentifier", table["id"], pick, arn=table["arn"], data=table)
        if rule_type:
            pools.add("ConfiguredTableAnalysisRuleType", rule_type, pick,
                      scope={"configuredTableIdentifier": table["id"]})


def add_change_requests(pools: Pools, requests, pick: str) -> None:
    for r in requests:
        pools.add("CollaborationChangeRequestIdentifier", r["id"], pick,
                  scope={"collaborationIdentifier": r["collaborationId"]}, data=r)


def associate(client: RawClient, pools: Pools, membership: dict, table: dict, rule_type: str | None, *,
              pinned: bool = False) -> dict:
    """Associate a configured table with the membership's collaboration (with a collaboration analysis rule of the
    table rule's type), and put both into the pools (`pinned`: never to be deleted by the fuzz)."""
    association = client("CreateConfiguredTableAssociation", membershipIdentifier=membership["id"],
                         configuredTableIdentifier=table["id"], name=f"fuzz_{table['id'][:8]}",
                         roleArn="arn:aws:iam::123456789012:role/fuzz-table-access")["configuredTableAssociation"]
    scope = {"membershipIdentifier": membership["id"]}
    pools.add("ConfiguredTableAssociationIdentifier", association["id"], "own", arn=association["arn"], scope=scope,
              data=association, pinned=pinned)
    if rule_type:
        client("CreateConfiguredTableAssociationAnalysisRule", membershipIdentifier=membership["id"],
               configuredTableAssociationIdentifier=association["id"], analysisRuleType=rule_type,
               analysisRulePolicy={"v1": {rule_type.lower(): {"allowedResultReceivers": []}}})
        pools.add("ConfiguredTableAssociationAnalysisRuleType", rule_type, "own",
                  scope={**scope, "configuredTableAssociationIdentifier": association["id"]}, pinned=pinned)
    return association


def id_mappings(server, pools: Pools, fuzzer, own_membership: dict, victim=None, victim_membership=None, *,
                phase: str = "1") -> None:
    """Local Entity Resolution entries: ID namespaces the fuzzer may associate; a SOURCE and a TARGET one over its
    customers table, associated in its sandbox (pinned), with a workflow between them and ID mapping tables made
    from it; and a victim's association."""
    def namespace(owner, name, kind, **data):
        arn = f"arn:aws:entityresolution:us-east-1:{owner.id}:idnamespace/{name}"
        with server.db.write() as conn:
            entity_resolution.put_namespace(conn, entity_resolution.make_namespace({"arn": arn, "type": kind,
                                                                                     **data}))
        return arn

    data = {"database": CUSTOMERS["database"], "table": CUSTOMERS["table"], "id_column": "user_id",
            "key_columns": ["email_hash"]}
    pools.id_namespaces = [namespace(fuzzer, f"fz{phase}-{i}", ("SOURCE", "TARGET")[i % 2]) for i in range(12)]
    source = namespace(fuzzer, f"fz{phase}-source", "SOURCE", **data)
    target = namespace(fuzzer, f"fz{phase}-target", "TARGET", **data)
    workflow = f"arn:aws:entityresolution:us-east-1:{fuzzer.id}:idmappingworkflow/fz{phase}"
    with server.db.write() as conn:
        entity_resolution.put_workflow(conn, entity_resolution.make_workflow(
            {"arn": workflow, "source": source, "target": target}))
    scope = {"membershipIdentifier": own_membership["id"]}
    for arn in (source, target):
        association = fuzzer.client.create_id_namespace_association(
            membershipIdentifier=own_membership["id"], name=arn.rsplit("/", 1)[1],
            inputReferenceConfig={"inputReferenceArn": arn, "manageResourcePolicies": True})["idNamespaceAssociation"]
        pools.add("IdNamespaceAssociationIdentifier", association["id"], "own", arn=association["arn"], scope=scope,
                  data=association, pinned=True)
    pools.id_mapping_workflows = [(own_membership["id"], workflow)]
    tables = [fuzzer.client.create_id_mapping_table(
        membershipIdentifier=own_membership["id"], name=f"fz_map_{i}",
        inputReferenceConfig={"inputReferenceArn": workflow, "manageResourcePolicies": True})["idMappingTable"]
        for i in range(3)]
    pools.id_mapping_tables = [(own_membership["id"], tables[0]["id"])]
    pools.deletable_id_mapping_tables = [(own_membership["id"], t["id"]) for t in tables[1:]]
    if victim is None:
        return
    foreign = namespace(victim, "victim", "SOURCE")
    association = victim.client.create_id_namespace_association(
        membershipIdentifier=victim_membership["id"], name="victim",
        inputReferenceConfig={"inputReferenceArn": foreign, "manageResourcePolicies": False})["idNamespaceAssociation"]
    pools.add("IdNamespaceAssociationIdentifier", association["id"], "foreign", arn=association["arn"],
              scope={"membershipIdentifier": victim_membership["id"]}, data=association)


@pytest.fixture(scope="module")
def world(server):
    """Victims with data of every kind, a fuzz account with a sandbox of its own, and helpers around it."""
    v1, v2, v3, h1, h2, h3, fuzzer = (Party(server) for _ in range(7))
    # Victims: live, left, removed and deleted states, tags everywhere, several pages of everything.
    c1 = create_collaboration(v1, [member(v2, ["CAN_RECEIVE_RESULTS"]), member(v3)], name="victim one",
                              description="stored before the fuzz", tags={"team": "victims", "k": "v"})
    c2 = create_collaboration(v2, [member(v1), member(v3)], name="victim two", tags={"owner": "v2"})
    c3 = create_collaboration(v1, [member(v2)], name="victim three")
    memberships = [join(v1, c1["id"], tags={"m": "v1"}), join(v2, c1["id"], tags={"m": "v2"}),
                   join(v2, c2["id"]), join(v1, c2["id"]), join(v1, c3["id"]), join(v2, c3["id"])]
    left = join(v3, c1["id"])
    v3.client.delete_membership(membershipIdentifier=left["id"])
    v2.client.delete_member(collaborationIdentifier=c2["id"], accountId=v3.id)
    # Change requests: pending (v2 votes on c1's), cancelled and committed ones, before c3 goes.
    victim_requests = [propose(v1, c1["id"], h3.id), propose(v1, c1["id"], "999999999990"),
                       propose(v2, c2["id"], h3.id), propose(v1, c3["id"], h3.id)]
    v1.client.update_collaboration_change_request(collaborationIdentifier=c1["id"],
                                                  changeRequestIdentifier=victim_requests[1]["id"], action="CANCEL")
    v1.client.delete_collaboration(collaborationIdentifier=c3["id"])
    # Victims' configured tables, over their own catalogs, with rules and tags.
    register(server, v1, CUSTOMERS, VICTIM_ONLY)
    register(server, v2, IMPRESSIONS)
    victim_tables = [
        configured_table(v1, glue(CUSTOMERS), CUSTOMERS["columns"], rule=AGGREGATION_RULE, tags={"t": "v1"}),
        configured_table(v1, glue(VICTIM_ONLY), ["user_id", "segment"], rule=LIST_RULE),
        configured_table(v1, SNOWFLAKE, ["order_id", "amount"], rule=CUSTOM_RULE, description="victim's"),
        configured_table(v2, glue(IMPRESSIONS), IMPRESSIONS["columns"], tags={"t": "v2"}),
    ]
    # The fuzz account's sandbox: its own collaboration, an open invitation and a joined one from helpers, its own
    # catalog (the sample tables and a broken entry) and configured tables.
    own = create_collaboration(fuzzer, [member(h1), member(h2)], name="fuzz sandbox", tags={"sandbox": "1"},
                               abilities=("CAN_QUERY", "CAN_RECEIVE_RESULTS", "CAN_EXPORT_QUERY_ANALYSIS_LOG"))
    own_membership = join(fuzzer, own["id"], tags={"sandbox": "1"})
    invite = create_collaboration(h1, [member(fuzzer)], name="helper invite", abilities=[])
    joined = create_collaboration(h2, [member(fuzzer)], name="helper joined", abilities=[])
    joined_membership = join(fuzzer, joined["id"])
    register(server, fuzzer, CUSTOMERS, IMPRESSIONS,
             {**BROKEN, "location": str(server.data_dir / "fuzz-missing" / "missing.parquet")})
    own_tables = [configured_table(fuzzer, glue(CUSTOMERS), CUSTOMERS["columns"], rule=LIST_RULE),
                  configured_table(fuzzer, glue(IMPRESSIONS), IMPRESSIONS["columns"][:3]),
                  configured_table(fuzzer, SNOWFLAKE, ["order_id"], rule=CUSTOM_RULE),
                  configured_table(fuzzer, glue(CUSTOMERS), ["user_id", "segment", "age_band"], rule=LIST_RULE),
                  configured_table(fuzzer, glue(CUSTOMERS), ["user_id", "segment"], rule=LIST_RULE)]
    own_requests = [propose(fuzzer, own["id"], h3.id), propose(fuzzer, own["id"], "999999999980"),
                    propose(fuzzer, own["id"], "999999999981"), propose(h2, joined["id"], h3.id)]
    victims = (v1, v2, v3)
    pools = Pools(account_id=fuzzer.id, invitable_accounts=[h1.id, h2.id, h3.id],
                  other_accounts=[v.id for v in victims],
                  catalog=[CUSTOMERS, IMPRESSIONS, BROKEN],
                  foreign_catalog=[(VICTIM_ONLY["database"], VICTIM_ONLY["table"])])
    pools.add("CollaborationIdentifier", own["id"], "own", arn=own["arn"], data=own, members=[h1.id, h2.id])
    for c in (invite, joined):
        pools.add("CollaborationIdentifier", c["id"], "invited", arn=c["arn"], data=c)
    for c in (c1, c2, c3):
        pools.add("CollaborationIdentifier", c["id"], "foreign", arn=c["arn"], data=c)
    for m in (own_membership, joined_membership):
        pools.add("MembershipIdentifier", m["id"], "own", arn=m["arn"], data=m)
    for m in memberships + [left]:
        pools.add("MembershipIdentifier", m["id"], "foreign", arn=None if m is left else m["arn"], data=m)
    add_tables(pools, victim_tables, "foreign")
    add_tables(pools, own_tables, "own")
    add_change_requests(pools, victim_requests, "foreign")
    add_change_requests(pools, own_requests, "own")
    if "CreateConfiguredTableAssociation" in IMPLEMENTED:  # associations (one with its rule) to reach them from
        raw = RawClient(server.port, fuzzer.account)
        associate(raw, pools, own_membership, *own_tables[0])
        associate(raw, pools, joined_membership, *own_tables[2])
        associate(raw, pools, joined_membership, *own_tables[3], pinned=True)  # in a helper's collaboration
        associate(raw, pools, own_membership, own_tables[4][0], None)
    if "CreateConfiguredAudienceModelAssociation" in IMPLEMENTED:  # audience model associations to reach
        raw = RawClient(server.port, fuzzer.account)
        for i, m in enumerate((own_membership, joined_membership)):
            made = raw("CreateConfiguredAudienceModelAssociation", membershipIdentifier=m["id"],
                       configuredAudienceModelArn=f"arn:aws:cleanrooms-ml:us-east-1:{fuzzer.id}:"
                                                  f"configured-audience-model/world-{i}",
                       configuredAudienceModelAssociationName=f"world {i}", manageResourcePolicies=True
                       )["configuredAudienceModelAssociation"]
            pools.add("ConfiguredAudienceModelAssociationIdentifier", made["id"], "own", arn=made["arn"],
                      scope={"membershipIdentifier": m["id"]}, data=made, pinned=True)
    if "CreateIdMappingTable" in IMPLEMENTED:
        id_mappings(server, pools, fuzzer, own_membership, v1, memberships[0])
    pools.tokens["victims"] = [
        v1.client.list_collaborations(maxResults=1)["nextToken"],
        v1.client.list_memberships(maxResults=1)["nextToken"],
        v1.client.list_members(collaborationIdentifier=c1["id"], maxResults=1)["nextToken"],
        v1.client.list_configured_tables(maxResults=1)["nextToken"],
        v1.client.list_collaboration_change_requests(collaborationIdentifier=c1["id"], maxResults=1)["nextToken"],
    ]
    return {"victims": victims, "fuzzer": fuzzer, "pools": pools, "helpers": (h1, h2, h3)}


# ------------------------------------------------------------------------------------------------ the oracle


def send(server, account: Account, request) -> wire.Reply:
    signer = account if request.secret_override is None else Account(account.account_id, account.access_key_id,
                                                                      request.secret_override)
    return wire.send(server.port, signer, request.method, request.path, query=request.query, body=request.body,
                     headers=request.headers, sign=request.sign,
                     **({} if request.content_type is ... else {"content_type": request.content_type}))


def judge(request, reply: wire.Reply) -> list[str]:
    """Everything wrong with one answer (empty when it is acceptable)."""
    problems = []
    routed = route(request.method, request.path)
    operation = routed[0] if routed else request.operation
    if reply.status >= 500:
        unimplemented = (reply.status, reply.error_type) == (501, "NotImplementedException") \
            and routed is not None and routed[0] not in IMPLEMENTED
        if not unimplemented:
            problems.append(f"5xx: {reply.describe()}")
    problems += model_problems(MODEL.operation_model(operation), reply)
    sent = (request.path + request.query).encode() + request.body
    problems += [f"error body leaks {word!r}" for word in wire.leaked(reply) if word.encode() not in sent]
    if b"locked" in reply.body.lower() and b"locked" not in sent.lower():
        problems.append(f"database lock surfaced: {reply.describe()}")
    if request.expect == "reject" and reply.status < 400:
        problems.append(f"accepted what must be refused ({'; '.join(sum(request.reasons.values(), [])) or 'target'})"
                        f": {reply.describe()}")
    if request.expect == "ok" and not 200 <= reply.status < 300:
        problems.append(f"refused what must succeed: {reply.describe()}")
    if routed is None and reply.status < 400:
        problems.append(f"a request no operation matches succeeded: {reply.describe()}")
    return problems


def fuzz(server, account: Account, pools: Pools, seed: int, count: int, figures, phase: str) -> list[str]:
    """Run `count` generated requests; return the problems found (empty when every answer was acceptable)."""
    rng = random.Random(seed)
    generator = Generator(rng, pools)
    failures: dict[str, list[str]] = collections.defaultdict(list)  # category -> first examples
    by_category: collections.Counter = collections.Counter()
    per_op: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    expectations: collections.Counter = collections.Counter()
    valid: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    signature_failures = 0
    for i in range(count):
        operation = IMPLEMENTED[i % len(IMPLEMENTED)] if i < len(IMPLEMENTED) else rng.choice(IMPLEMENTED)
        if i >= len(IMPLEMENTED) and rng.random() < 0.2:  # more tries for operations that have not succeeded yet
            unreached = [op for op in IMPLEMENTED if not per_op[op]["2xx"] and op not in TIMING_BOUND]
            operation = rng.choice(unreached) if unreached else operation
        # Operations that have not succeeded yet get unmutated requests more often, so that reaching them does not
        # hang on luck; every operation must succeed at least once (checked below).
        request = generator.request(operation, mutate=None if per_op[operation]["2xx"] else rng.random() < 0.3)
        expectations[request.expect or "either"] += 1
        try:
            reply = send(server, account, request)
        except OSError as exc:  # the server closed the connection or stopped answering
            failures["transport"].append(f"#{i} transport error {exc!r}: {request.describe()}")
            by_category["transport"] += 1
            if server.process.poll() is not None:
                break
            continue
        per_op[operation]["2xx" if reply.status < 300 else str(reply.status)] += 1
        if not request.why:  # valid requests: what they got, by what was expected
            valid[operation][f"{request.expect or 'either'}->{reply.error_type or reply.status}"] += 1
        if reply.error_type in ("InvalidSignatureException", "IncompleteSignatureException") and request.sign \
                and request.secret_override is None:
            signature_failures += 1
        problems = judge(request, reply)
        if problems:
            category = re.sub(r"\[\d+\]", "[]", problems[0].split(":")[0].split(" (")[0])
            by_category[category] += 1
            if len(failures[category]) < 3:
                failures[category].append(f"#{i} {request.describe()}\n      -> " + "\n      -> ".join(problems))
        routed = route(request.method, request.path)
        if routed is not None:
            pools.learn(routed[0], routed[1], request.params, reply.status, reply.body)
    figures(f"fuzz[{phase}]: seed={seed} requests={count} expected reject/ok/either="
            f"{expectations['reject']}/{expectations['ok']}/{expectations['either']} "
            f"signature failures={signature_failures} bad answers={sum(by_category.values())}")
    figures(f"fuzz[{phase}]: per operation " + ", ".join(
        f"{op}={sum(c.values())}({c['2xx']} ok)" for op, c in sorted(per_op.items())))
    if VERBOSE:
        for op, outcomes in sorted(valid.items()):
            figures(f"fuzz[{phase}]: valid {op}: " + ", ".join(f"{k}={n}" for k, n in outcomes.most_common()))
    problems = []
    if failures:
        problems.append(f"{sum(by_category.values())} bad answers {dict(by_category)}; first ones of each kind:\n  "
                        + "\n  ".join(sum(failures.values(), [])))
    if server.process.poll() is not None:
        problems.append("the server died during the fuzz")
    never_ok = [op for op in IMPLEMENTED if per_op[op]["2xx"] == 0 and op not in TIMING_BOUND]
    if never_ok:
        problems.append(f"the fuzz never got past validation for {never_ok}: the generator lost its reach (a new "
                        "operation needs a nudge in fuzzgen.NUDGES, and maybe resources in the world fixture)")
    if signature_failures > MAX_SIGNATURE_FAILURE_SHARE * count:
        problems.append(f"{signature_failures} signature failures: the harness, not the server, ate the requests")
    return [f"fuzz[{phase}] seed={seed}: {p}" for p in problems]


# Operations whose success depends on timing the fuzz does not control, with the tests that reach them.
TIMING_BOUND = {
    "UpdateProtectedQuery": "a cancel succeeds only while a query runs: tests/e2e/test_protected_queries.py cancels "
                            "running and waiting queries",
    "StartAnalysisLogExport": "an export succeeds only once one of the fuzzer's queries has ended after running: "
                              "tests/e2e/test_analysis_log_exports.py exports finished queries",
    "GetAnalysisLogExport": "needs an export made by StartAnalysisLogExport (above): "
                            "tests/e2e/test_analysis_log_exports.py reads exports back",
    "DisallowIntermediateTable": "succeeds only for the owner of a base table of an intermediate table whose "
                                 "population the policy accepted: tests/e2e/test_intermediate_tables.py disallows",
    # Not timing but setup the fuzz server lacks: a job needs a PySpark template, whose artifacts need an S3
    # endpoint; tests/e2e/test_protected_jobs.py starts, reads and cancels jobs on a server that has one.
    **dict.fromkeys(["StartProtectedJob", "GetProtectedJob", "UpdateProtectedJob"],
                    "a job needs a PySpark template (an S3 endpoint): tests/e2e/test_protected_jobs.py"),
}


def healthy(server, party) -> None:
    """A valid call of a fresh client still works (its answer's conformance is the fuzz's business, not this)."""
    assert server.process.poll() is None
    response = server.client(party.account, check=False).list_collaborations()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert isinstance(response["collaborationList"], list)


# --------------------------------------------------------------------------------------------------- tests


def test_generated_valid_inputs_satisfy_the_model(world):
    """The generator itself: its valid inputs break no constraint the model states (so a refusal means a bug)."""
    import botocore.validate

    generator = Generator(random.Random(FUZZ_SEED), world["pools"])
    validator = botocore.validate.ParamValidator()
    for operation in IMPLEMENTED:
        shape = MODEL.operation_model(operation).input_shape
        for _ in range(150):
            request = generator.request(operation, mutate=False)
            assert conformance.check_output(shape, request.params) == [], (operation, request.params)
            assert pattern_problems(shape, request.params) == [], (operation, request.params)
            report = validator.validate(request.params, shape)
            assert not report.has_errors(), (operation, report.generate_report())
            assert route(request.method, request.path)[0] == operation, request.describe()


def test_every_patterned_string_of_the_model_can_be_drawn():
    """Every patterned string shape in any operation's input (implemented or not) gets values from its pattern
    that match it as a whole and fit its length bounds, so a new operation never lacks a generator."""
    rng = random.Random(FUZZ_SEED)
    shapes: dict[str, object] = {}

    def walk(shape):
        if shape.name in shapes:
            return
        shapes[shape.name] = shape
        children = {"structure": lambda: shape.members.values(), "list": lambda: [shape.member],
                    "map": lambda: [shape.key, shape.value]}.get(shape.type_name, lambda: [])()
        for child in children:
            walk(child)

    for name in MODEL.operation_names:
        walk(MODEL.operation_model(name).input_shape)
    patterned = [s for s in shapes.values() if s.type_name == "string" and "pattern" in s.metadata and not s.enum]
    assert len(patterned) > 50
    for shape in patterned:
        lo, hi = shape.metadata.get("min", 0), shape.metadata.get("max", 10_000)
        for _ in range(20):
            value = patterngen.generate(shape.metadata["pattern"], rng, lo, hi)
            assert lo <= len(value) <= hi and patterngen.matches(shape.metadata["pattern"], value), (shape.name, value)


def test_resources_are_derived_from_the_model():
    """What the pools learn from: each Create operation, the identifier shape its resource is named by, and the
    parent it lives under."""
    expected = {
        "CreateCollaboration": ("CollaborationIdentifier", (), False),
        "CreateMembership": ("MembershipIdentifier", (), False),
        "CreateConfiguredTable": ("ConfiguredTableIdentifier", (), False),
        "CreateConfiguredTableAnalysisRule": ("ConfiguredTableAnalysisRuleType", ("configuredTableIdentifier",), True),
        "CreateCollaborationChangeRequest": ("CollaborationChangeRequestIdentifier", ("collaborationIdentifier",),
                                             False),
        "CreateConfiguredTableAssociation": ("ConfiguredTableAssociationIdentifier", ("membershipIdentifier",), False),
    }
    for create, (shape, scope, typed) in expected.items():
        resource = RESOURCES[create]
        assert (resource.shape, resource.scope, resource.typed) == (shape, scope, typed), resource
    assert RESOURCES["CreateConfiguredTable"].delete == "DeleteConfiguredTable"
    assert RESOURCES["CreateCollaborationChangeRequest"].delete is None
    made = [op for op in IMPLEMENTED if op.startswith("Create") and op in RESOURCES]
    assert set(made) >= {"CreateCollaboration", "CreateMembership", "CreateConfiguredTable",
                         "CreateConfiguredTableAnalysisRule", "CreateCollaborationChangeRequest"}


def test_fuzz_as_a_stranger(server, world, figures):
    """Phase 1: the fuzz account is in none of the victims' collaborations; their data must not change at all."""
    victims, fuzzer = world["victims"], world["fuzzer"]
    before = {v.id: snapshot(v.client, v.id) for v in victims}
    problems = fuzz(server, fuzzer.account, world["pools"], FUZZ_SEED, int(FUZZ_REQUESTS * STRANGER_SHARE),
                    figures, "stranger")
    healthy(server, fuzzer)
    healthy(server, victims[0])
    for v in victims:
        after = snapshot(v.client, v.id)
        assert after == before[v.id], f"victim {v.id} changed: " + "\n".join(diff(before[v.id], after))
    assert not problems, "\n".join(problems)


def test_fuzz_as_an_invitee_and_a_member(server, world, figures):
    """Phase 2: the fuzz account is invited to one victim collaboration and active in another. It may join, leave
    and manage its own membership, and vote on the change request it was asked to approve; nothing else of the
    victims' may change (names, descriptions, other members, tags, memberships, change requests, tables)."""
    (v1, v2, v3), fuzzer, pools = world["victims"], world["fuzzer"], world["pools"]
    invited = create_collaboration(v1, [member(fuzzer, [], "fuzzer"), member(v2)], name="fuzzer invited",
                                   description="the fuzz account may join", tags={"phase": "2"})
    active = create_collaboration(v1, [member(fuzzer, ["CAN_RECEIVE_RESULTS"], "fuzzer"), member(v3)],
                                  name="fuzzer active", tags={"phase": "2"})
    for collaboration in (invited, active):
        join(v1, collaboration["id"], tags={"owner": "v1"})
    join(v2, invited["id"])
    own = join(fuzzer, active["id"])
    # The fuzz account votes on the first (it was ACTIVE when it was made), only reads the second.
    requests = [propose(v1, active["id"], world["helpers"][2].id), propose(v1, invited["id"], "999999999991")]
    assert fuzzer.id in requests[0]["approvals"] and fuzzer.id not in requests[1]["approvals"]
    for c in (invited, active):
        pools.add("CollaborationIdentifier", c["id"], "invited", arn=c["arn"], data=c)
    pools.add("MembershipIdentifier", own["id"], "own", arn=own["arn"], data=own)
    add_change_requests(pools, requests, "foreign")
    helpers = world["helpers"]  # and a fresh sandbox of its own (phase 1 may have deleted the first)
    sandbox = create_collaboration(fuzzer, [member(h) for h in helpers], name="fuzz sandbox 2",
                                   abilities=("CAN_QUERY", "CAN_RECEIVE_RESULTS"))
    pools.add("CollaborationIdentifier", sandbox["id"], "own", arn=sandbox["arn"], data=sandbox,
              members=[h.id for h in helpers])
    sandbox_membership = join(fuzzer, sandbox["id"])
    pools.add("MembershipIdentifier", sandbox_membership["id"], "own", arn=sandbox_membership["arn"],
              data=sandbox_membership)
    fresh_tables = [configured_table(fuzzer, glue(CUSTOMERS), CUSTOMERS["columns"], rule=AGGREGATION_RULE),
                    configured_table(fuzzer, SNOWFLAKE, ["order_id", "amount"], rule=CUSTOM_RULE),
                    configured_table(fuzzer, glue(IMPRESSIONS), IMPRESSIONS["columns"])]
    add_tables(pools, fresh_tables, "own")
    add_change_requests(pools, [propose(fuzzer, sandbox["id"], f"99999999999{i}") for i in range(2, 5)], "own")
    if "CreateConfiguredTableAssociation" in IMPLEMENTED:
        hosted = create_collaboration(helpers[2], [member(fuzzer)], name="helper hosts", abilities=[])
        hosted_membership = join(fuzzer, hosted["id"])
        pools.add("CollaborationIdentifier", hosted["id"], "invited", arn=hosted["arn"], data=hosted)
        pools.add("MembershipIdentifier", hosted_membership["id"], "own", arn=hosted_membership["arn"],
                  data=hosted_membership)
        raw = RawClient(server.port, fuzzer.account)
        associate(raw, pools, sandbox_membership, *fresh_tables[0])
        associate(raw, pools, hosted_membership, *fresh_tables[1], pinned=True)
    if "CreateIdMappingTable" in IMPLEMENTED:
        id_mappings(server, pools, fuzzer, sandbox_membership, phase="2")
    ids = (invited["id"], active["id"])

    def view(v):
        trimmed, rows = without_member(snapshot(v.client, v.id), fuzzer.id, ids)
        trimmed, votes = without_votes(trimmed, fuzzer.id, ids)
        return trimmed, rows, votes

    before, rows_before, votes_before = {}, None, {}
    for v in (v1, v2, v3):  # v1 created both, so its member lists show the fuzz account's rows
        before[v.id], rows, votes = view(v)
        rows_before = rows_before or rows
        votes_before.update(votes)
    problems = fuzz(server, fuzzer.account, pools, FUZZ_SEED + 1, FUZZ_REQUESTS - int(FUZZ_REQUESTS * STRANGER_SHARE),
                    figures, "member")
    healthy(server, fuzzer)
    healthy(server, v1)
    rows_after, votes_after = None, {}
    for v in (v1, v2, v3):
        after, rows, votes = view(v)
        rows_after = rows_after or rows
        votes_after.update(votes)
        assert after == before[v.id], f"victim {v.id} changed: " + "\n".join(diff(before[v.id], after))
    for cid in ids:  # the fuzz account's own row: only its status (and membership) may have moved, legitimately
        (was,), (now,) = rows_before[cid], rows_after[cid]
        assert {k: now[k] for k in ("abilities", "displayName", "paymentConfiguration", "createTime")} == \
            {k: was[k] for k in ("abilities", "displayName", "paymentConfiguration", "createTime")}
        allowed = {"INVITED": {"INVITED", "ACTIVE", "LEFT"}, "ACTIVE": {"ACTIVE", "LEFT"}}[was["status"]]
        assert now["status"] in allowed, (cid, was["status"], now["status"])
        assert ("membershipId" in now) == (now["status"] == "ACTIVE"), now
    assert set(votes_after) == set(votes_before) == {requests[0]["id"]}
    for rid, now in votes_after.items():  # its vote, and the status that follows from the votes
        was = votes_before[rid]
        assert was["approvals"][fuzzer.id] == {"status": "PENDING"} and was["status"] == "PENDING"
        vote = now["approvals"][fuzzer.id]["status"]
        assert vote in ("PENDING", "APPROVED", "DENIED"), now
        tally = [a["status"] for a in now["approvals"].values()]
        expected = "DENIED" if "DENIED" in tally else "APPROVED" if set(tally) == {"APPROVED"} else "PENDING"
        assert now["status"] == expected, now
        assert (now["updateTime"] == was["updateTime"]) == (vote == "PENDING"), (was, now)
    figures(f"fuzz[member]: the fuzz account's vote on the change request it was asked to approve: "
            f"{votes_after[requests[0]['id']]['approvals'][fuzzer.id]['status']}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("method,path,query", [
    ("GET", "/collaborations/" + "a" * 100_000, ""),
    ("DELETE", "/memberships/" + "%2e%2e%2F" * 12_000, ""),
    ("GET", "/tags/" + "arn%3Aaws%3Acleanrooms%3Aus-east-1%3A123456789012%3Acollaboration%2F" + "x" * 100_000, ""),
    ("GET", "/collaborations", "nextToken=" + "A" * 100_000),
    ("GET", "/memberships", "&".join(f"status=ACTIVE{i}" for i in range(10_000))),
], ids=["label", "encoded-dots", "arn", "token", "10000-params"])
def test_100_kb_request_lines_are_refused_without_harm(server, method, path, query):
    """The fuzz keeps request lines under the HTTP parser's 64 KiB limit so that every answer can be held to the
    model; beyond it the HTTP layer may answer on its own (not in the service's JSON format), but with a 4xx,
    never a 5xx, and the server must go on serving."""
    account = server.new_account()
    reply = wire.send(server.port, account, method, path, query=query)
    assert 400 <= reply.status < 500, reply.describe()
    assert wire.send(server.port, account, "GET", "/collaborations").status == 200
    assert server.process.poll() is None


def test_documented_tag_rules_hold_when_resources_are_created(server):
    """Found by the fuzz: docs/behaviour.md (Tags) reserves `aws:` keys and caps a resource at 50 tags. TagResource
    enforces both; creating a collaboration or a membership with such tags must be refused the same way."""
    a = Party(server)
    for tags in ({"aws:reserved": "x"}, {f"k{i}": "v" for i in range(51)}):
        reply = wire.send(server.port, a.account, "POST", "/collaborations", body=_create_body(tags=tags))
        assert (reply.status, reply.error_type) == (400, "ValidationException"), reply.describe()
    collaboration = create_collaboration(a)
    for tags in ({"aws:reserved": "x"}, {f"k{i}": "v" for i in range(51)}):
        reply = wire.send(server.port, a.account, "POST", "/memberships",
                          body=_json({"collaborationIdentifier": collaboration["id"], "queryLogStatus": "DISABLED",
                                      "tags": tags}))
        assert (reply.status, reply.error_type) == (400, "ValidationException"), reply.describe()
    assert a.client.list_memberships()["membershipSummaries"] == []


def _conforming(operation: str, reply: wire.Reply) -> dict:
    problems = conformance.check_response(MODEL.operation_model(operation), reply.status, reply.headers, reply.body)
    assert reply.status < 300 and not problems, (reply.describe(), problems)
    return reply.json() if reply.body else {}


def test_json_nulls_are_treated_as_absent_members(server):
    """Found by the fuzz: the validator lets `null` stand for an absent optional member (as AWS does), but the
    services then store and apply the null: UpdateCollaboration {"name": null} is a 500, other nulls come back in
    outputs as nulls (not allowed by the model) or wipe a required member (a membership's queryLogStatus)."""
    a = Party(server)
    created = _conforming("CreateCollaboration", wire.send(server.port, a.account, "POST", "/collaborations",
                                                           body=_create_body(name="nulls", jobLogStatus=None,
                                                                             isMetricsEnabled=None,
                                                                             analyticsEngine=None, description=None,
                                                                             dataEncryptionMetadata=None)))
    cid = created["collaboration"]["id"]
    updated = _conforming("UpdateCollaboration", wire.send(server.port, a.account, "PATCH", f"/collaborations/{cid}",
                                                           body=_json({"name": None, "description": None,
                                                                       "analyticsEngine": None})))
    assert updated["collaboration"]["name"] == "nulls"
    joined = _conforming("CreateMembership", wire.send(server.port, a.account, "POST", "/memberships", body=_json({
        "collaborationIdentifier": cid, "queryLogStatus": "ENABLED", "jobLogStatus": None, "tags": None,
        "defaultResultConfiguration": {"outputConfiguration": {"s3": {"resultFormat": "CSV", "bucket": "bucket",
                                                                      "keyPrefix": None}}, "roleArn": None}})))
    mid = joined["membership"]["id"]
    _conforming("UpdateMembership", wire.send(server.port, a.account, "PATCH", f"/memberships/{mid}",
                                              body=_json({"queryLogStatus": None, "defaultResultConfiguration": None})))
    got = _conforming("GetMembership", wire.send(server.port, a.account, "GET", f"/memberships/{mid}"))
    assert got["membership"]["queryLogStatus"] == "ENABLED"
    _conforming("GetCollaboration", wire.send(server.port, a.account, "GET", f"/collaborations/{cid}"))


def test_unknown_members_inside_structures_are_not_stored(server):
    """Found by the fuzz: unknown members are ignored at the top level, but inside a structure
    (dataEncryptionMetadata, mlMemberAbilities, paymentConfiguration, defaultResultConfiguration...) they are stored
    as sent and returned to every reader, against the output model (and as a store for arbitrary data that other
    members' clients receive)."""
    a, b = Party(server), Party(server)
    body = _create_body(
        name="unknown", dataEncryptionMetadata={"allowCleartext": True, "allowDuplicates": True,
                                                "allowJoinsOnColumnsWithDifferentNames": True, "preserveNulls": True,
                                                "smuggled": "x" * 1000},
        members=[{"accountId": b.id, "memberAbilities": [], "displayName": "b",
                  "mlMemberAbilities": {"customMLMemberAbilities": [], "smuggled": {"to": "every member"}}}])
    created = _conforming("CreateCollaboration", wire.send(server.port, a.account, "POST", "/collaborations",
                                                           body=body))
    cid = created["collaboration"]["id"]
    _conforming("GetCollaboration", wire.send(server.port, a.account, "GET", f"/collaborations/{cid}"))
    _conforming("ListMembers", wire.send(server.port, b.account, "GET", f"/collaborations/{cid}/members"))
    joined = _conforming("CreateMembership", wire.send(server.port, b.account, "POST", "/memberships", body=_json({
        "collaborationIdentifier": cid, "queryLogStatus": "DISABLED",
        "defaultResultConfiguration": {"outputConfiguration": {"s3": {"resultFormat": "CSV", "bucket": "bucket",
                                                                      "smuggled": 1}}, "smuggled": 2}})))
    _conforming("GetMembership", wire.send(server.port, b.account, "GET", f"/memberships/{joined['membership']['id']}"))


def _json(value) -> bytes:
    import json

    return json.dumps(value).encode()


def _create_body(**extra) -> bytes:
    body = {"members": [], "name": "tags", "creatorMemberAbilities": [], "creatorDisplayName": "c",
            "queryLogStatus": "DISABLED"}
    body.update(extra)
    return _json(body)


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_unreadable_catalog_tables_do_not_reveal_server_paths(server, kind):
    """Found by the fuzz: SECURITY.md promises that no file path is ever sent to a client, but a configured table
    over a catalog entry whose data cannot be read was refused with the server-side location in the message
    ("Table broken.t cannot be read: Table location /srv/.../t.parquet does not exist", or DuckDB's error naming the
    file). The caller would learn where the server keeps data; the refusal names the table only."""
    a = Party(server)
    directory = server.data_dir / f"catalog-{a.id}"
    location = directory / "t.parquet"
    if kind == "corrupt":
        directory.mkdir()
        location.write_bytes(b"PAR1 this is not parquet")
    register(server, a, {"database": "broken", "table": "t", "location": str(location)})
    reply = wire.send(server.port, a.account, "POST", "/configuredTables", body=_json({
        "name": "t", "tableReference": {"glue": {"databaseName": "broken", "tableName": "t"}},
        "allowedColumns": ["user_id"], "analysisMethod": "DIRECT_QUERY"}))
    assert (reply.status, reply.error_type) == (400, "ValidationException"), reply.describe()
    assert not model_problems(MODEL.operation_model("CreateConfiguredTable"), reply)
    for secret in (str(location), str(server.data_dir), location.name):
        assert secret.encode() not in reply.body, f"the answer reveals {secret!r}: {reply.describe(600)}"
