"""Analysis log exports over HTTP, with several accounts: real queries run, their redacted logs are exported to the
server's local results directory and to an S3-compatible endpoint (moto's server) and read back. Every response is
checked against the model by the clients' conformance hook."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.test_protected_queries import build_world, start, wait
from tests.e2e.test_query_results_s3 import s3_query_world
from tests.support.builders import all_pages, raises

ABILITY = "CAN_EXPORT_QUERY_ANALYSIS_LOG"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
# An allowed query with data values in it (a segment, a campaign), which the exported log must not carry.
SQL = ("SELECT c.age_band, COUNT(DISTINCT c.user_id) AS users FROM customers c INNER JOIN impressions i "
       "ON c.user_id = i.user_id WHERE c.segment <> 'secret-segment-x' AND i.campaign_id <> 'c4242' "
       "GROUP BY c.age_band")
FINAL = {"SUCCESS", "FAILED"}


def destination(bucket="alice-logs", prefix="exports/daily") -> dict:
    s3 = {"bucket": bucket}
    if prefix is not None:
        s3["keyPrefix"] = prefix
    return {"outputConfiguration": {"s3": s3}}


def export(p, membership_id, query_id, **extra) -> dict:
    extra.setdefault("resultConfiguration", destination())
    return p.client.start_analysis_log_export(membershipIdentifier=membership_id, analysisId=query_id,
                                              analysisType="PROTECTED_QUERY", **extra)["analysisLogExport"]


def get(p, membership_id, export_id) -> dict:
    return p.client.get_analysis_log_export(membershipIdentifier=membership_id,
                                            analysisLogExportIdentifier=export_id)["analysisLogExport"]


def finished(p, membership_id, export_id) -> dict:
    for _ in range(200):
        found = get(p, membership_id, export_id)
        if found["status"] in FINAL:
            return found
    raise AssertionError(f"export {export_id} did not finish: {found}")


def listed(p, membership_id, **filters) -> list[dict]:
    return all_pages(p.client, "list_analysis_log_exports", "analysisLogExports", membershipIdentifier=membership_id,
                     **filters)


def local_log(server, collaboration_id, query_id, export_id, bucket="alice-logs", prefix="exports/daily") -> list:
    path = (server.data_dir / "results" / bucket / prefix / collaboration_id / query_id / export_id / "events.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def world(server, party, tmp_path):
    """Alice (creator, queries, may export) and Bob (may export, neither runs nor pays), after one query ran."""
    w = build_world(server, party, tmp_path, alice_abilities=("CAN_QUERY", "CAN_RECEIVE_RESULTS", ABILITY),
                    bob_abilities=(ABILITY,))
    w.query = wait(w.alice.client, w.mid(w.alice), start(w, SQL)["id"])
    assert w.query["status"] == "SUCCESS", w.query
    return w


def test_an_export_writes_the_redacted_log_where_the_member_asked(server, world):
    alice, mid, query = world.alice, world.mid(world.alice), world.query
    started = export(alice, mid, query["id"])
    assert (started["status"], started["analysisId"], started["analysisType"], started["membershipId"]) == (
        "IN_PROGRESS", query["id"], "PROTECTED_QUERY", mid)
    assert started["resultConfiguration"] == destination() and started["createTime"] == started["updateTime"]
    assert "error" not in started
    done = finished(alice, mid, started["analysisLogExportId"])
    assert done["status"] == "SUCCESS" and "error" not in done
    assert {k: v for k, v in done.items() if k not in ("status", "updateTime")} == \
        {k: v for k, v in started.items() if k not in ("status", "updateTime")}

    events = local_log(server, world.collaboration["id"], query["id"], started["analysisLogExportId"])
    assert [e["event"] for e in events] == ["QueryAccepted", "QueryEnded"]
    accepted, ended = events
    assert accepted["protectedQueryId"] == query["id"] and accepted["collaborationId"] == world.collaboration["id"]
    assert accepted["relations"] == ["customers", "impressions"]
    assert "WHERE c.segment <> ? AND i.campaign_id <> ?" in accepted["queryText"], accepted["queryText"]
    assert (ended["status"], ended["totalDurationInMillis"]) == ("SUCCESS", query["statistics"]["totalDurationInMillis"])
    text = json.dumps(events)
    for secret in ("secret-segment-x", "c4242", *world.paths.values(), "crm", "ads"):
        assert secret not in text, secret  # no data value, no storage location, no catalog name

    # a second export of the same query goes to its own path; the first stays
    again = export(alice, mid, query["id"])
    assert finished(alice, mid, again["analysisLogExportId"])["status"] == "SUCCESS"
    assert local_log(server, world.collaboration["id"], query["id"], again["analysisLogExportId"]) == events
    assert local_log(server, world.collaboration["id"], query["id"], started["analysisLogExportId"]) == events
    # no key prefix: the collaboration's directory sits at the bucket's root
    bare = export(alice, mid, query["id"], resultConfiguration=destination("bare-logs", None))
    assert finished(alice, mid, bare["analysisLogExportId"])["status"] == "SUCCESS"
    assert (server.data_dir / "results" / "bare-logs" / world.collaboration["id"] / query["id"]
            / bare["analysisLogExportId"] / "events.jsonl").is_file()


def test_list_filters_and_pages_newest_first(world):
    alice, mid, query = world.alice, world.mid(world.alice), world.query
    other = wait(alice.client, mid, start(world, SQL.replace("c4242", "c1"))["id"])
    made = [export(alice, mid, q["id"]) for q in (query, other, query)]
    for e in made:
        finished(alice, mid, e["analysisLogExportId"])
    ids = [e["analysisLogExportId"] for e in reversed(made)]
    summaries = listed(alice, mid)
    assert [s["analysisLogExportId"] for s in summaries] == ids
    assert summaries[0] == {"analysisLogExportId": ids[0], "analysisId": query["id"], "analysisType": "PROTECTED_QUERY",
                            "status": "SUCCESS", "createTime": made[2]["createTime"]}
    assert [s["analysisLogExportId"] for s in listed(alice, mid, analysisIdentifier=query["id"])] == [ids[0], ids[2]]
    assert [s["analysisLogExportId"] for s in listed(alice, mid, status="SUCCESS")] == ids
    assert listed(alice, mid, status="FAILED") == [] and listed(alice, mid, status="IN_PROGRESS") == []
    assert listed(alice, mid, analysisIdentifier=UNKNOWN_ID) == []
    pages = list(alice.client.get_paginator("list_analysis_log_exports").paginate(
        membershipIdentifier=mid, PaginationConfig={"PageSize": 2}))
    assert [len(p["analysisLogExports"]) for p in pages] == [2, 1]
    token = pages[0]["nextToken"]
    # a token is bound to its caller, its membership and its filters
    raises("ValidationException", alice.client.list_analysis_log_exports, membershipIdentifier=mid, nextToken=token,
           status="SUCCESS")
    raises("ValidationException", world.bob.client.list_analysis_log_exports, membershipIdentifier=world.mid(world.bob),
           nextToken=token)
    assert listed(world.bob, world.mid(world.bob)) == []  # exports belong to the membership that started them


def test_who_may_export(server, party, tmp_path, world):
    bob, query = world.bob, world.query
    # the ability alone is not enough: Bob neither ran nor paid for the query
    response = raises("AccessDeniedException", export, bob, world.mid(bob), query["id"])
    assert "ran" in response["Error"]["Message"]
    # the payer may export what another member ran; a runner without the ability may not
    (tmp_path / "paid").mkdir()
    paid = build_world(server, party, tmp_path / "paid", alice_abilities=("CAN_QUERY", "CAN_RECEIVE_RESULTS"),
                       bob_abilities=(ABILITY,), bob_pays=True)
    q = wait(paid.alice.client, paid.mid(paid.alice), start(paid, SQL)["id"])
    assert q["queryComputePayerAccountId"] == paid.bob.id and q["status"] == "SUCCESS"
    e = export(paid.bob, paid.mid(paid.bob), q["id"], resultConfiguration=destination("bob-logs"))
    assert finished(paid.bob, paid.mid(paid.bob), e["analysisLogExportId"])["status"] == "SUCCESS"
    assert local_log(server, paid.collaboration["id"], q["id"], e["analysisLogExportId"], "bob-logs")[1]["status"] == \
        "SUCCESS"
    response = raises("AccessDeniedException", export, paid.alice, paid.mid(paid.alice), q["id"])
    assert ABILITY in response["Error"]["Message"]

    # the ability comes and goes through change requests that every member approves
    change = paid.alice.client.create_collaboration_change_request(
        collaborationIdentifier=paid.collaboration["id"], changes=[{"specificationType": "MEMBER", "specification": {
            "member": {"accountId": paid.alice.id, "memberAbilities": ["CAN_RECEIVE_RESULTS", ABILITY]}}}]
    )["collaborationChangeRequest"]
    assert change["changes"][0]["types"] == ["GRANT_EXPORT_QUERY_ANALYSIS_LOG_ABILITY"]
    for who, action in ((paid.bob, "APPROVE"), (paid.alice, "COMMIT")):
        who.client.update_collaboration_change_request(collaborationIdentifier=paid.collaboration["id"],
                                                       changeRequestIdentifier=change["id"], action=action)
    membership = paid.alice.client.get_membership(membershipIdentifier=paid.mid(paid.alice))["membership"]
    assert sorted(membership["memberAbilities"]) == sorted(["CAN_QUERY", "CAN_RECEIVE_RESULTS", ABILITY])
    e = export(paid.alice, paid.mid(paid.alice), q["id"])
    assert finished(paid.alice, paid.mid(paid.alice), e["analysisLogExportId"])["status"] == "SUCCESS"
    # a query of another collaboration is unknown in this one
    response = raises("ResourceNotFoundException", export, paid.alice, paid.mid(paid.alice), query["id"])
    assert response["resourceId"] == query["id"]

    # a member who was removed keeps reading its exports but starts none
    paid.alice.client.delete_member(collaborationIdentifier=paid.collaboration["id"], accountId=paid.bob.id)
    raises("AccessDeniedException", export, paid.bob, paid.mid(paid.bob), q["id"])
    assert [s["analysisId"] for s in listed(paid.bob, paid.mid(paid.bob))] == [q["id"]]


def test_only_ended_queries_that_ran_can_be_exported(world):
    alice, mid = world.alice, world.mid(world.alice)
    refused = start(world, "SELECT user_id FROM impressions")  # refused by the rules: it never ran
    assert refused["status"] == "FAILED"
    response = raises("ValidationException", export, alice, mid, refused["id"])
    assert response["reason"] == "INVALID_CONFIGURATION" and "before it started running" in response["Error"]["Message"]
    assert [f["name"] for f in response["fieldList"]] == ["analysisId"]
    raises("ResourceNotFoundException", export, alice, mid, UNKNOWN_ID)
    raises("ResourceNotFoundException", export, alice, mid, str(uuid.uuid4()))
    assert listed(alice, mid) == []


def test_requests_are_validated(server, world):
    alice, mid, query = world.alice, world.mid(world.alice), world.query
    loose = server.client(alice.account, parameter_validation=False)  # the server, not boto3, must refuse

    def start_export(**params):
        request = {"membershipIdentifier": mid, "analysisId": query["id"], "analysisType": "PROTECTED_QUERY",
                   "resultConfiguration": destination(), **params}
        return loose.start_analysis_log_export(**{k: v for k, v in request.items() if v is not None})

    for params in ({"analysisType": "PROTECTED_JOB"}, {"analysisType": None}, {"analysisId": "not-a-uuid"},
                   {"resultConfiguration": destination("Bad_Bucket")}, {"resultConfiguration": destination("ab")},
                   {"resultConfiguration": destination(prefix="a b")},
                   {"resultConfiguration": {"outputConfiguration": {}}}, {"resultConfiguration": None}):
        raises("ValidationException", start_export, **params)
    for prefix in ("..", "a/../b", "./x"):
        response = raises("ValidationException", start_export, resultConfiguration=destination(prefix=prefix))
        assert [f["name"] for f in response["fieldList"]] == ["resultConfiguration.outputConfiguration.s3.keyPrefix"]
    raises("ValidationException", loose.get_analysis_log_export, membershipIdentifier=mid,
           analysisLogExportIdentifier="x")
    for params in ({"status": "DONE"}, {"analysisIdentifier": "nope"}, {"maxResults": 0}, {"maxResults": 101}):
        raises("ValidationException", loose.list_analysis_log_exports, membershipIdentifier=mid, **params)
    assert listed(alice, mid) == []


def test_other_accounts_reach_no_export(party, world):
    alice, bob, mid, query = world.alice, world.bob, world.mid(world.alice), world.query
    e = export(alice, mid, query["id"])
    finished(alice, mid, e["analysisLogExportId"])
    before = (get(alice, mid, e["analysisLogExportId"]), listed(alice, mid))
    outsider = party()
    for p, own_mid in ((bob, world.mid(bob)), (outsider, None)):
        def calls(membership_id):
            return [(p.client.start_analysis_log_export, {"membershipIdentifier": membership_id,
                                                          "analysisId": query["id"], "analysisType": "PROTECTED_QUERY",
                                                          "resultConfiguration": destination()}),
                    (p.client.get_analysis_log_export, {"membershipIdentifier": membership_id,
                                                        "analysisLogExportIdentifier": e["analysisLogExportId"]}),
                    (p.client.list_analysis_log_exports, {"membershipIdentifier": membership_id})]

        for (call, params), (unknown_call, unknown_params) in zip(calls(mid), calls(UNKNOWN_ID)):
            foreign = raises("ResourceNotFoundException", call, **params)
            unknown = raises("ResourceNotFoundException", unknown_call, **unknown_params)
            assert (foreign["resourceId"], foreign["resourceType"]) == (mid, "MEMBERSHIP")
            assert foreign["Error"]["Message"].replace(mid, "X") == unknown["Error"]["Message"].replace(UNKNOWN_ID, "X")
        if own_mid:  # Alice's export id under the attacker's own membership does not exist there either
            response = raises("ResourceNotFoundException", get, p, own_mid, e["analysisLogExportId"])
            assert response["resourceId"] == e["analysisLogExportId"]
    assert (get(alice, mid, e["analysisLogExportId"]), listed(alice, mid)) == before


# ------------------------------------------------------------------------------------------------ S3


@pytest.fixture(scope="module")
def s3_world(tmp_path_factory):
    with s3_query_world(tmp_path_factory.mktemp("log-exports-s3"), ("alice-results", "alice-logs"),
                        alice_abilities=("CAN_QUERY", "CAN_RECEIVE_RESULTS", ABILITY)) as (server, s3, _, world):
        world.query = wait(world.alice.client, world.mid(world.alice), start(world, SQL)["id"])
        assert world.query["status"] == "SUCCESS", world.query
        yield server, s3, world


def test_an_export_is_written_to_s3_through_the_servers_settings(s3_world):
    server, s3, world = s3_world
    alice, mid, query = world.alice, world.mid(world.alice), world.query
    e = export(alice, mid, query["id"])
    assert finished(alice, mid, e["analysisLogExportId"])["status"] == "SUCCESS"
    key = f"exports/daily/{world.collaboration['id']}/{query['id']}/{e['analysisLogExportId']}/events.jsonl"
    body = s3.get_object(Bucket="alice-logs", Key=key)["Body"].read().decode()
    events = [json.loads(line) for line in body.splitlines()]
    assert [ev["event"] for ev in events] == ["QueryAccepted", "QueryEnded"]
    assert events[1]["status"] == "SUCCESS" and "secret-segment-x" not in body
    assert not (server.data_dir / "results" / "alice-logs").exists()  # nothing went to the local directory

    missing = export(alice, mid, query["id"], resultConfiguration=destination("no-such-bucket"))
    failed = finished(alice, mid, missing["analysisLogExportId"])
    assert failed["status"] == "FAILED"
    assert failed["error"]["code"] == "RESOURCE_NOT_FOUND" and "no-such-bucket" in failed["error"]["message"]
    assert [s["analysisLogExportId"] for s in listed(alice, mid, status="FAILED")] == [missing["analysisLogExportId"]]


def test_an_export_its_server_stopped_writing_ends_failed(server, world):
    """An export left IN_PROGRESS past its deadline (the process writing it died) is reported FAILED, everywhere
    alike, and no longer blocks another export to the same destination."""
    from opencleanrooms.storage import analysis_log_exports as export_store

    alice, mid, query = world.alice, world.mid(world.alice), world.query
    export_id = str(uuid.uuid4())
    with server.db.write() as conn:  # what a server that died mid-export leaves behind
        export_store.insert(conn, {
            "id": export_id, "region": "us-east-1", "account_id": alice.id,
            "collaboration_id": world.collaboration["id"], "membership_id": mid, "analysis_id": query["id"],
            "analysis_type": "PROTECTED_QUERY", "status": "IN_PROGRESS", "create_time": 1_700_000_000.0,
            "update_time": 1_700_000_000.0, "deadline": 1_700_000_600.0,
            "doc": {"resultConfiguration": destination()}})
    assert [s["status"] for s in listed(alice, mid, status="FAILED")] == ["FAILED"]
    found = get(alice, mid, export_id)
    assert found["status"] == "FAILED" and found["error"]["code"] == "INTERNAL_ERROR"
    assert listed(alice, mid, status="IN_PROGRESS") == []
    e = export(alice, mid, query["id"])  # same query and destination: not blocked
    assert finished(alice, mid, e["analysisLogExportId"])["status"] == "SUCCESS"


def test_change_requests_grant_and_revoke_the_ability(party):
    """Inviting with the ability, and granting or revoking it, are the export ability's own change types."""
    alice, bob, carol = party(), party(), party()
    collaboration = alice.client.create_collaboration(
        name="c", description="d", creatorDisplayName="A", creatorMemberAbilities=["CAN_QUERY", ABILITY],
        queryLogStatus="DISABLED", members=[{"accountId": bob.id, "displayName": "B", "memberAbilities": []}],
        autoApprovedChangeRequestTypes=["ADD_MEMBER", "GRANT_EXPORT_QUERY_ANALYSIS_LOG_ABILITY",
                                        "REVOKE_EXPORT_QUERY_ANALYSIS_LOG_ABILITY"])["collaboration"]
    cid = collaboration["id"]

    def change(account, wanted):
        spec = {"accountId": account, "memberAbilities": wanted}
        if account not in abilities():
            spec["displayName"] = "C"  # needed to invite; names are not changed afterwards
        return alice.client.create_collaboration_change_request(collaborationIdentifier=cid, changes=[{
            "specificationType": "MEMBER", "specification": {"member": spec}}])["collaborationChangeRequest"]


    def abilities():
        return {m["accountId"]: sorted(m["abilities"]) for m in alice.client.list_members(
            collaborationIdentifier=cid)["memberSummaries"]}

    made = change(bob.id, [ABILITY])
    assert (made["status"], made["changes"][0]["types"]) == ("COMMITTED", ["GRANT_EXPORT_QUERY_ANALYSIS_LOG_ABILITY"])
    made = change(carol.id, [ABILITY])
    assert made["changes"][0]["types"] == ["ADD_MEMBER", "GRANT_EXPORT_QUERY_ANALYSIS_LOG_ABILITY"]
    assert abilities() == {alice.id: sorted(["CAN_QUERY", ABILITY]), bob.id: [ABILITY], carol.id: [ABILITY]}
    made = change(alice.id, [])  # the creator's CAN_QUERY stays
    assert made["changes"][0]["types"] == ["REVOKE_EXPORT_QUERY_ANALYSIS_LOG_ABILITY"]
    assert abilities()[alice.id] == ["CAN_QUERY"]
    # granting one ability and revoking another is two types, and not auto-approved here (no other member is
    # ACTIVE to vote, so it is APPROVED at once and waits for the creator's COMMIT)
    made = change(bob.id, ["CAN_RECEIVE_RESULTS"])
    assert made["status"] == "APPROVED" and made["isAutoApproved"] is False
    assert made["changes"][0]["types"] == ["GRANT_RECEIVE_RESULTS_ABILITY", "REVOKE_EXPORT_QUERY_ANALYSIS_LOG_ABILITY"]
    response = raises("ValidationException", change, carol.id, [ABILITY])  # nothing would change
    assert response["reason"] == "INVALID_CONFIGURATION"


def test_queries_with_differential_privacy_cannot_be_exported(server, party, tmp_path):
    world = build_world(server, party, tmp_path, rule_type="CUSTOM",
                        alice_abilities=("CAN_QUERY", "CAN_RECEIVE_RESULTS", ABILITY))
    world.bob.client.update_configured_table_analysis_rule(
        configuredTableIdentifier=world.tables["impressions"]["id"], analysisRuleType="CUSTOM",
        analysisRulePolicy={"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"],
                                              "allowedAnalysisProviders": [world.alice.id],
                                              "differentialPrivacy": {"columns": [{"name": "user_id"}]}}}})
    world.bob.client.create_privacy_budget_template(
        membershipIdentifier=world.mid(world.bob), privacyBudgetType="DIFFERENTIAL_PRIVACY", autoRefresh="NONE",
        parameters={"differentialPrivacy": {"epsilon": 1, "usersNoisePerQuery": 10}})
    mid = world.mid(world.alice)
    noisy = wait(world.alice.client, mid, start(world, "SELECT COUNT(DISTINCT user_id) AS n FROM impressions")["id"])
    assert noisy["status"] == "SUCCESS" and "differentialPrivacy" in noisy, noisy
    response = raises("ValidationException", export, world.alice, mid, noisy["id"])
    assert "differential privacy" in response["Error"]["Message"]
    plain = wait(world.alice.client, mid, start(world, "SELECT COUNT(*) AS n FROM customers")["id"])
    assert plain["status"] == "SUCCESS", plain  # a query of the same member without it can be exported
    assert finished(world.alice, mid, export(world.alice, mid, plain["id"])["analysisLogExportId"])["status"] == \
        "SUCCESS"
