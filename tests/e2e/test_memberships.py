"""Joining, reading, updating and leaving; payment responsibilities; membership-scoped access."""

from __future__ import annotations

from tests.support.builders import create_collaboration, join, member, raises

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
RESULTS = {"outputConfiguration": {"s3": {"resultFormat": "CSV", "bucket": "results-bucket", "keyPrefix": "out/"}},
           "roleArn": "arn:aws:iam::123456789012:role/results-role"}


def test_join_makes_member_active_once(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b, ["CAN_RECEIVE_RESULTS"], "Bee")], name="joinme")
    m = join(b, c["id"], defaultResultConfiguration=RESULTS, tags={"team": "b"})
    assert m["arn"] == f"arn:aws:cleanrooms:us-east-1:{b.id}:membership/{m['id']}"
    assert (m["collaborationId"], m["collaborationArn"], m["status"]) == (c["id"], c["arn"], "ACTIVE")
    assert (m["collaborationCreatorAccountId"], m["collaborationName"]) == (a.id, "joinme")
    assert m["memberAbilities"] == ["CAN_RECEIVE_RESULTS"]
    assert m["paymentConfiguration"] == {"queryCompute": {"isResponsible": False}}
    assert m["defaultResultConfiguration"] == RESULTS and m["queryLogStatus"] == "DISABLED"
    seen = b.client.get_collaboration(collaborationIdentifier=c["id"])["collaboration"]
    assert (seen["memberStatus"], seen["membershipId"], seen["membershipArn"]) == ("ACTIVE", m["id"], m["arn"])
    assert b.client.get_membership(membershipIdentifier=m["id"])["membership"] == m
    response = raises("ConflictException", b.client.create_membership, collaborationIdentifier=c["id"],
                      queryLogStatus="DISABLED")
    assert response["reason"] == "ALREADY_EXISTS"
    assert [s["id"] for s in b.client.list_memberships()["membershipSummaries"]] == [m["id"]]
    members = {s["accountId"]: s for s in a.client.list_members(collaborationIdentifier=c["id"])["memberSummaries"]}
    assert members[b.id]["status"] == "ACTIVE" and members[b.id]["membershipId"] == m["id"]
    assert members[b.id]["membershipArn"] == m["arn"]
    assert b.client.list_tags_for_resource(resourceArn=m["arn"])["tags"] == {"team": "b"}


def test_memberships_are_for_their_owner_only(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b)])
    m = join(b, c["id"])
    for membership_id in (m["id"], UNKNOWN_ID):
        raises("ResourceNotFoundException", a.client.get_membership, membershipIdentifier=membership_id)
        raises("ResourceNotFoundException", a.client.update_membership, membershipIdentifier=membership_id,
               queryLogStatus="ENABLED")
        raises("ResourceNotFoundException", a.client.delete_membership, membershipIdentifier=membership_id)
    response = raises("ResourceNotFoundException", a.client.get_membership, membershipIdentifier=m["id"])
    assert (response["resourceId"], response["resourceType"]) == (m["id"], "MEMBERSHIP")
    assert b.client.get_membership(membershipIdentifier=m["id"])["membership"]["status"] == "ACTIVE"
    assert m["id"] not in [s["id"] for s in a.client.list_memberships()["membershipSummaries"]]


def test_update_membership(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b, ["CAN_RECEIVE_RESULTS"])])
    m = join(b, c["id"])
    updated = b.client.update_membership(membershipIdentifier=m["id"], queryLogStatus="ENABLED",
                                         defaultResultConfiguration=RESULTS)["membership"]
    assert updated["queryLogStatus"] == "ENABLED" and updated["defaultResultConfiguration"] == RESULTS
    assert updated["updateTime"] >= m["updateTime"] and updated["createTime"] == m["createTime"]
    assert b.client.get_membership(membershipIdentifier=m["id"])["membership"] == updated


def test_leaving_marks_member_left_and_removes_membership(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b)])
    join(a, c["id"])
    m = join(b, c["id"])
    b.client.delete_membership(membershipIdentifier=m["id"])
    raises("ResourceNotFoundException", b.client.get_membership, membershipIdentifier=m["id"])
    assert m["id"] not in [s["id"] for s in b.client.list_memberships()["membershipSummaries"]]
    statuses = {s["accountId"]: s for s in a.client.list_members(collaborationIdentifier=c["id"])["memberSummaries"]}
    assert statuses[b.id]["status"] == "LEFT" and "membershipId" not in statuses[b.id]
    response = raises("ConflictException", b.client.create_membership, collaborationIdentifier=c["id"],
                      queryLogStatus="DISABLED")
    assert response["reason"] == "INVALID_STATE"


def test_creator_cannot_leave_while_active(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b)])
    m = join(a, c["id"])
    response = raises("ConflictException", a.client.delete_membership, membershipIdentifier=m["id"])
    assert response["Error"]["Message"] == ("Cannot delete membership for the creator of the collaboration while "
                                            "their membership is still ACTIVE")
    assert a.client.get_membership(membershipIdentifier=m["id"])["membership"]["status"] == "ACTIVE"
    a.client.delete_collaboration(collaborationIdentifier=c["id"])
    a.client.delete_membership(membershipIdentifier=m["id"])  # allowed once the collaboration is gone
    raises("ResourceNotFoundException", a.client.get_membership, membershipIdentifier=m["id"])


def test_removed_membership_cannot_be_updated_but_can_be_deleted(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b)])
    m = join(b, c["id"])
    a.client.delete_member(collaborationIdentifier=c["id"], accountId=b.id)
    response = raises("ConflictException", b.client.update_membership, membershipIdentifier=m["id"],
                      queryLogStatus="ENABLED")
    assert response["reason"] == "INVALID_STATE"
    b.client.delete_membership(membershipIdentifier=m["id"])
    statuses = {s["accountId"]: s["status"] for s in
                a.client.list_members(collaborationIdentifier=c["id"])["memberSummaries"]}
    assert statuses[b.id] == "REMOVED"


def test_default_payer_is_the_member_who_can_query(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b, ["CAN_QUERY", "CAN_RUN_JOB"])], abilities=["CAN_RECEIVE_RESULTS"])
    pay = {s["accountId"]: s["paymentConfiguration"] for s in
           a.client.list_members(collaborationIdentifier=c["id"])["memberSummaries"]}
    assert pay[b.id] == {"queryCompute": {"isResponsible": True}, "jobCompute": {"isResponsible": True}}
    assert pay[a.id] == {"queryCompute": {"isResponsible": False}, "jobCompute": {"isResponsible": False}}
    m = join(b, c["id"])  # the querying member may omit paymentConfiguration
    assert m["paymentConfiguration"] == pay[b.id]


def test_a_named_payer_must_accept_exactly_what_the_creator_configured(party):
    a, b, d = party(), party(), party()
    yes, no = {"isResponsible": True}, {"isResponsible": False}
    c = create_collaboration(
        a, [member(b, ["CAN_QUERY"]), member(d, [], paymentConfiguration={"queryCompute": yes,
                                                                          "machineLearning": {"modelTraining": yes}})],
        abilities=[])
    pay = {s["accountId"]: s["paymentConfiguration"] for s in
           a.client.list_members(collaborationIdentifier=c["id"])["memberSummaries"]}
    assert pay[d.id] == {"queryCompute": yes, "machineLearning": {"modelTraining": yes}}
    assert pay[b.id] == {"queryCompute": no, "machineLearning": {"modelTraining": no}}
    raises("ValidationException", d.client.create_membership, collaborationIdentifier=c["id"],
           queryLogStatus="DISABLED")  # a payer without CAN_QUERY must state it
    raises("ValidationException", d.client.create_membership, collaborationIdentifier=c["id"],
           queryLogStatus="DISABLED", paymentConfiguration={"queryCompute": no})
    raises("ValidationException", b.client.create_membership, collaborationIdentifier=c["id"],
           queryLogStatus="DISABLED", paymentConfiguration={"queryCompute": yes})
    raises("ValidationException", d.client.create_membership, collaborationIdentifier=c["id"],
           queryLogStatus="DISABLED",
           paymentConfiguration={"queryCompute": yes, "machineLearning": {"modelTraining": no}})
    assert d.client.list_memberships()["membershipSummaries"] == []
    m = join(d, c["id"], paymentConfiguration={"queryCompute": yes, "machineLearning": {"modelTraining": yes}})
    assert m["paymentConfiguration"] == pay[d.id]
    m_b = join(b, c["id"], paymentConfiguration={"queryCompute": no})
    raises("ValidationException", b.client.update_membership, membershipIdentifier=m_b["id"],
           membershipPaymentConfiguration={"queryCompute": yes})
    updated = b.client.update_membership(membershipIdentifier=m_b["id"],
                                         membershipPaymentConfiguration={"queryCompute": no})["membership"]
    assert updated["paymentConfiguration"] == pay[b.id]


def test_payment_rules_on_create(party):
    a, b, d = party(), party(), party()
    yes, no = {"isResponsible": True}, {"isResponsible": False}
    two_payers = [member(b, [], paymentConfiguration={"queryCompute": yes}),
                  member(d, [], paymentConfiguration={"queryCompute": yes})]
    response = raises("ValidationException", a.client.create_collaboration, members=two_payers, name="n",
                      creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="A", queryLogStatus="DISABLED")
    assert response["reason"] == "INVALID_CONFIGURATION"
    raises("ValidationException", a.client.create_collaboration, members=[member(b)], name="n",
           creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="A", queryLogStatus="DISABLED",
           creatorPaymentConfiguration={"queryCompute": no})
    raises("ValidationException", a.client.create_collaboration,
           members=[member(b, ["CAN_QUERY", "CAN_RUN_JOB"], paymentConfiguration={"queryCompute": yes,
                                                                                  "jobCompute": no})],
           name="n", creatorMemberAbilities=[], creatorDisplayName="A", queryLogStatus="DISABLED")
    ml = {"syntheticDataGeneration": yes}
    raises("ValidationException", a.client.create_collaboration,
           members=[member(b, [], paymentConfiguration={"queryCompute": no, "machineLearning": ml}),
                    member(d, [], paymentConfiguration={"queryCompute": no, "machineLearning": ml})],
           name="n", creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="A", queryLogStatus="DISABLED")
    assert a.client.list_collaborations()["collaborationList"] == []
    # Another member may take over query costs from the member who can query.
    c = create_collaboration(a, [member(b, [], paymentConfiguration={"queryCompute": yes})],
                             creatorPaymentConfiguration={"queryCompute": no})
    pay = {s["accountId"]: s["paymentConfiguration"] for s in
           a.client.list_members(collaborationIdentifier=c["id"])["memberSummaries"]}
    assert pay == {a.id: {"queryCompute": no}, b.id: {"queryCompute": yes}}


def test_metrics_only_where_the_collaboration_enables_them(party):
    a, b = party(), party()
    plain = create_collaboration(a, [member(b)])
    raises("ValidationException", b.client.create_membership, collaborationIdentifier=plain["id"],
           queryLogStatus="DISABLED", isMetricsEnabled=True)
    metered = create_collaboration(a, [member(b)], isMetricsEnabled=True)
    assert metered["isMetricsEnabled"] is True
    assert join(b, metered["id"], isMetricsEnabled=True)["isMetricsEnabled"] is True
