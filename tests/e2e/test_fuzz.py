"""Model-driven fuzzing of every implemented operation over signed raw HTTP.

Requests come from ``tests.support.fuzzgen``: valid ones built from each input shape (pointing at real resources
some of the time) and mutated ones (wrong types, missing members, out-of-range values, bad enums, 100 KB strings,
lone surrogates, nulls, unknown keys, deep nesting, bad ids and ARNs in labels, duplicate and unknown query
parameters, odd content types, bodies on GET, broken JSON, wrong methods, bad signatures). Every answer must:

* never be a 5xx (501 only for an operation the model has but the server does not implement);
* conform to the model (``conformance.check_response``: declared or common error code, modeled status, exact
  shapes) and leak no internals;
* refuse what is certainly invalid and succeed where success is certain (see ``fuzzgen`` for how that is known).

The fuzz account works first as a stranger to the victims' collaborations, then as an invitee and a member of two
of them. Victims' views are snapshotted through the API before and after each phase: nothing may change but what
the fuzz account may legitimately change (its own member row). The server must still answer valid calls at the end.

Reproduce a run with ``OPENCLEANROOMS_FUZZ_SEED=<seed>``; scale it with ``OPENCLEANROOMS_FUZZ_REQUESTS=<n>``.
"""

from __future__ import annotations

import collections
import os
import random
import re

import pytest

from tests.support import conformance, wire
from tests.support.builders import create_collaboration, join, member
from tests.support.figures import figures  # noqa: F401  (fixture)
from tests.support.fuzzgen import IMPLEMENTED, MODEL, Generator, Pools, route
from tests.support.server import Account
from tests.support.views import diff, snapshot, without_member

FUZZ_REQUESTS = int(os.environ.get("OPENCLEANROOMS_FUZZ_REQUESTS", "3600"))  # both phases together
STRANGER_SHARE = 0.65  # the rest runs with the fuzz account inside victims' collaborations
FUZZ_SEED = int(os.environ.get("OPENCLEANROOMS_FUZZ_SEED", "20220217"))
MAX_SIGNATURE_FAILURE_SHARE = 0.10  # more would mean the harness's signing, not the server, ate the requests


class Party:
    def __init__(self, server, account: Account | None = None) -> None:
        self.account = account or server.new_account()
        self.id = self.account.account_id
        self.client = server.client(self.account)


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
    v1.client.delete_collaboration(collaborationIdentifier=c3["id"])
    # The fuzz account's sandbox: its own collaboration, an open invitation and a joined one from helpers.
    own = create_collaboration(fuzzer, [member(h1), member(h2)], name="fuzz sandbox", tags={"sandbox": "1"})
    own_membership = join(fuzzer, own["id"], tags={"sandbox": "1"})
    invite = create_collaboration(h1, [member(fuzzer)], name="helper invite", abilities=[])
    joined = create_collaboration(h2, [member(fuzzer)], name="helper joined", abilities=[])
    joined_membership = join(fuzzer, joined["id"])
    victims = (v1, v2, v3)
    pools = Pools(
        account_id=fuzzer.id,
        own_collaborations=[{"id": own["id"], "arn": own["arn"], "members": [h1.id, h2.id], "deleted": False}],
        own_memberships=[{"id": m["id"], "arn": m["arn"], "collaboration_id": m["collaborationId"], "gone": False}
                         for m in (own_membership, joined_membership)],
        invited=[invite["id"], joined["id"]],
        foreign_collaborations=[c1["id"], c2["id"], c3["id"]],
        foreign_memberships=[m["id"] for m in memberships] + [left["id"]],
        foreign_arns=[c["arn"] for c in (c1, c2, c3)] + [m["arn"] for m in memberships],
        invitable_accounts=[h1.id, h2.id, h3.id],
        other_accounts=[v.id for v in victims],
    )
    pools.tokens["victims"] = [
        v1.client.list_collaborations(maxResults=1)["nextToken"],
        v1.client.list_memberships(maxResults=1)["nextToken"],
        v1.client.list_members(collaborationIdentifier=c1["id"], maxResults=1)["nextToken"],
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
    problems += conformance.check_response(MODEL.operation_model(operation), reply.status, reply.headers, reply.body)
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
    signature_failures = 0
    for i in range(count):
        operation = IMPLEMENTED[i % len(IMPLEMENTED)] if i < len(IMPLEMENTED) else rng.choice(IMPLEMENTED)
        request = generator.request(operation)
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
    problems = []
    if failures:
        problems.append(f"{sum(by_category.values())} bad answers {dict(by_category)}; first ones of each kind:\n  "
                        + "\n  ".join(sum(failures.values(), [])))
    if server.process.poll() is not None:
        problems.append("the server died during the fuzz")
    never_ok = [op for op in IMPLEMENTED if per_op[op]["2xx"] == 0]
    if never_ok:
        problems.append(f"the fuzz never got past validation for {never_ok}: the generator lost its reach")
    if signature_failures > MAX_SIGNATURE_FAILURE_SHARE * count:
        problems.append(f"{signature_failures} signature failures: the harness, not the server, ate the requests")
    return [f"fuzz[{phase}] seed={seed}: {p}" for p in problems]


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
            report = validator.validate(request.params, shape)
            assert not report.has_errors(), (operation, report.generate_report())
            assert route(request.method, request.path)[0] == operation, request.describe()


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
    and manage its own membership; nothing else of the victims' may change (names, descriptions, other members,
    tags, memberships)."""
    (v1, v2, v3), fuzzer, pools = world["victims"], world["fuzzer"], world["pools"]
    invited = create_collaboration(v1, [member(fuzzer, [], "fuzzer"), member(v2)], name="fuzzer invited",
                                   description="the fuzz account may join", tags={"phase": "2"})
    active = create_collaboration(v1, [member(fuzzer, ["CAN_RECEIVE_RESULTS"], "fuzzer"), member(v3)],
                                  name="fuzzer active", tags={"phase": "2"})
    for collaboration in (invited, active):
        join(v1, collaboration["id"], tags={"owner": "v1"})
    join(v2, invited["id"])
    own = join(fuzzer, active["id"])
    pools.invited += [invited["id"], active["id"]]
    pools.own_memberships.append({"id": own["id"], "arn": own["arn"], "collaboration_id": active["id"],
                                  "gone": False})
    pools.foreign_arns += [invited["arn"], active["arn"]]
    ids = (invited["id"], active["id"])
    before, rows_before = {}, None
    for v in (v1, v2, v3):  # v1 created both, so its member lists show the fuzz account's rows
        before[v.id], rows = without_member(snapshot(v.client, v.id), fuzzer.id, ids)
        rows_before = rows_before or rows
    problems = fuzz(server, fuzzer.account, pools, FUZZ_SEED + 1, FUZZ_REQUESTS - int(FUZZ_REQUESTS * STRANGER_SHARE),
                    figures, "member")
    healthy(server, fuzzer)
    healthy(server, v1)
    rows_after = None
    for v in (v1, v2, v3):
        after, rows = without_member(snapshot(v.client, v.id), fuzzer.id, ids)
        rows_after = rows_after or rows
        assert after == before[v.id], f"victim {v.id} changed: " + "\n".join(diff(before[v.id], after))
    for cid in ids:  # the fuzz account's own row: only its status (and membership) may have moved, legitimately
        (was,), (now,) = rows_before[cid], rows_after[cid]
        assert {k: now[k] for k in ("abilities", "displayName", "paymentConfiguration", "createTime")} == \
            {k: was[k] for k in ("abilities", "displayName", "paymentConfiguration", "createTime")}
        allowed = {"INVITED": {"INVITED", "ACTIVE", "LEFT"}, "ACTIVE": {"ACTIVE", "LEFT"}}[was["status"]]
        assert now["status"] in allowed, (cid, was["status"], now["status"])
        assert ("membershipId" in now) == (now["status"] == "ACTIVE"), now
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
