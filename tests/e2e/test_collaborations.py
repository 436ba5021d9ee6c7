"""Collaboration lifecycle over HTTP with several accounts: create, read, update, delete, members, visibility."""

from __future__ import annotations

import datetime

from tests.support.builders import create_collaboration, join, member, raises

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def test_create_returns_collaboration_as_creator_sees_it(party):
    a, b = party(), party()
    before = datetime.datetime.now(datetime.timezone.utc)
    c = create_collaboration(a, [member(b, ["CAN_RECEIVE_RESULTS"], "Bee")], name="retail",
                             description="line one\r\nline two", analyticsEngine="SPARK",
                             dataEncryptionMetadata={"allowCleartext": True, "allowDuplicates": False,
                                                     "allowJoinsOnColumnsWithDifferentNames": False,
                                                     "preserveNulls": True},
                             autoApprovedChangeRequestTypes=["ADD_MEMBER"], jobLogStatus="ENABLED")
    assert c["arn"] == f"arn:aws:cleanrooms:us-east-1:{a.id}:collaboration/{c['id']}"
    assert (c["name"], c["description"], c["creatorAccountId"]) == ("retail", "line one\r\nline two", a.id)
    assert c["creatorDisplayName"] == f"creator {a.id}"
    assert c["memberStatus"] == "INVITED" and "membershipId" not in c and "membershipArn" not in c
    assert c["analyticsEngine"] == "SPARK" and c["jobLogStatus"] == "ENABLED"
    assert c["autoApprovedChangeTypes"] == ["ADD_MEMBER"]
    assert c["dataEncryptionMetadata"]["preserveNulls"] is True
    assert c["createTime"] == c["updateTime"]
    assert abs((c["createTime"] - before).total_seconds()) < 60


def test_invitee_can_get_and_list_members_before_joining(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b, [], "Bee")])
    seen = b.client.get_collaboration(collaborationIdentifier=c["id"])["collaboration"]
    assert seen["memberStatus"] == "INVITED" and "membershipId" not in seen
    assert seen["creatorAccountId"] == a.id
    members = b.client.list_members(collaborationIdentifier=c["id"])["memberSummaries"]
    assert [(m["accountId"], m["status"], m["displayName"]) for m in members] == [
        (a.id, "INVITED", f"creator {a.id}"), (b.id, "INVITED", "Bee")]
    assert members[0]["abilities"] == ["CAN_QUERY"] and members[1]["abilities"] == []
    assert members[0]["paymentConfiguration"] == {"queryCompute": {"isResponsible": True}}
    assert members[1]["paymentConfiguration"] == {"queryCompute": {"isResponsible": False}}


def test_strangers_and_unknown_ids_are_denied_alike(party):
    a, stranger = party(), party()
    c = create_collaboration(a)
    for collaboration_id in (c["id"], UNKNOWN_ID):
        raises("AccessDeniedException", stranger.client.get_collaboration, collaborationIdentifier=collaboration_id)
        raises("AccessDeniedException", stranger.client.list_members, collaborationIdentifier=collaboration_id)
        raises("AccessDeniedException", stranger.client.update_collaboration, collaborationIdentifier=collaboration_id,
               name="x")
        raises("AccessDeniedException", stranger.client.delete_collaboration, collaborationIdentifier=collaboration_id)
        raises("AccessDeniedException", stranger.client.create_membership, collaborationIdentifier=collaboration_id,
               queryLogStatus="DISABLED")
    denied = raises("AccessDeniedException", stranger.client.get_collaboration, collaborationIdentifier=c["id"])
    unknown = raises("AccessDeniedException", stranger.client.get_collaboration, collaborationIdentifier=UNKNOWN_ID)
    assert denied["Error"]["Message"].replace(c["id"], "X") == unknown["Error"]["Message"].replace(UNKNOWN_ID, "X")
    assert a.client.get_collaboration(collaborationIdentifier=c["id"])["collaboration"]["name"] == "collab"


def test_only_the_creator_updates_and_names_stay_current_everywhere(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b)], name="before")
    join(a, c["id"])
    membership_b = join(b, c["id"])
    raises("AccessDeniedException", b.client.update_collaboration, collaborationIdentifier=c["id"], name="evil")
    updated = a.client.update_collaboration(collaborationIdentifier=c["id"], name="after", description="new",
                                            analyticsEngine="CLEAN_ROOMS_SQL")["collaboration"]
    assert (updated["name"], updated["description"], updated["analyticsEngine"]) == ("after", "new",
                                                                                     "CLEAN_ROOMS_SQL")
    assert updated["updateTime"] >= updated["createTime"] and updated["memberStatus"] == "ACTIVE"
    assert b.client.get_membership(membershipIdentifier=membership_b["id"])["membership"]["collaborationName"] == \
        "after"
    summaries = b.client.list_memberships()["membershipSummaries"]
    assert [s["collaborationName"] for s in summaries if s["id"] == membership_b["id"]] == ["after"]
    listed = [s for s in b.client.list_collaborations()["collaborationList"] if s["id"] == c["id"]]
    assert listed[0]["name"] == "after" and listed[0]["analyticsEngine"] == "CLEAN_ROOMS_SQL"


def test_delete_collaboration_hides_it_and_marks_memberships(party):
    a, b, c_party = party(), party(), party()
    c = create_collaboration(a, [member(b), member(c_party)])
    membership_a = join(a, c["id"])
    membership_b = join(b, c["id"])
    raises("AccessDeniedException", b.client.delete_collaboration, collaborationIdentifier=c["id"])
    a.client.delete_collaboration(collaborationIdentifier=c["id"])
    for p in (a, b, c_party):
        raises("AccessDeniedException", p.client.get_collaboration, collaborationIdentifier=c["id"])
        assert c["id"] not in [s["id"] for s in p.client.list_collaborations()["collaborationList"]]
    for p, m in ((a, membership_a), (b, membership_b)):
        assert p.client.get_membership(membershipIdentifier=m["id"])["membership"]["status"] == \
            "COLLABORATION_DELETED"
        deleted = p.client.list_memberships(status="COLLABORATION_DELETED")["membershipSummaries"]
        assert m["id"] in [s["id"] for s in deleted]
    raises("AccessDeniedException", a.client.delete_collaboration, collaborationIdentifier=c["id"])
    raises("AccessDeniedException", c_party.client.create_membership, collaborationIdentifier=c["id"],
           queryLogStatus="DISABLED")


def test_delete_member_removes_and_marks_membership(party):
    a, b, c_party = party(), party(), party()
    c = create_collaboration(a, [member(b), member(c_party)])
    join(a, c["id"])
    membership_b = join(b, c["id"])
    raises("AccessDeniedException", b.client.delete_member, collaborationIdentifier=c["id"], accountId=c_party.id)
    a.client.delete_member(collaborationIdentifier=c["id"], accountId=b.id)
    a.client.delete_member(collaborationIdentifier=c["id"], accountId=c_party.id)  # never joined
    statuses = {m["accountId"]: m["status"] for m in
                a.client.list_members(collaborationIdentifier=c["id"])["memberSummaries"]}
    assert statuses == {a.id: "ACTIVE", b.id: "REMOVED", c_party.id: "REMOVED"}
    assert b.client.get_membership(membershipIdentifier=membership_b["id"])["membership"]["status"] == "REMOVED"
    assert [s["id"] for s in b.client.list_memberships(status="REMOVED")["membershipSummaries"]] == \
        [membership_b["id"]]
    seen = b.client.get_collaboration(collaborationIdentifier=c["id"])["collaboration"]
    assert seen["memberStatus"] == "REMOVED"
    raises("AccessDeniedException", b.client.list_members, collaborationIdentifier=c["id"])
    raises("ConflictException", a.client.delete_member, collaborationIdentifier=c["id"], accountId=b.id)
    raises("ConflictException", c_party.client.create_membership, collaborationIdentifier=c["id"],
           queryLogStatus="DISABLED")
    raises("ValidationException", a.client.delete_member, collaborationIdentifier=c["id"], accountId=a.id)
    raises("ResourceNotFoundException", a.client.delete_member, collaborationIdentifier=c["id"],
           accountId="999999999999")


def test_member_lists_reject_duplicate_and_self_accounts(party):
    a, b = party(), party()
    response = raises("ValidationException", a.client.create_collaboration, members=[member(b), member(b)],
                      name="n", creatorMemberAbilities=[], creatorDisplayName="A", queryLogStatus="DISABLED")
    assert response["fieldList"][0]["name"] == "members.2.member.accountId"
    raises("ValidationException", a.client.create_collaboration, members=[member(a)], name="n",
           creatorMemberAbilities=[], creatorDisplayName="A", queryLogStatus="DISABLED")
    assert a.client.list_collaborations()["collaborationList"] == []


def test_list_collaborations_filters_by_the_callers_status(party):
    a, b = party(), party()
    create_collaboration(a, [member(b)], name="invited")
    active = create_collaboration(a, [member(b)], name="active")
    left = create_collaboration(a, [member(b)], name="left")
    join(b, active["id"])
    join(a, left["id"])
    m = join(b, left["id"])
    b.client.delete_membership(membershipIdentifier=m["id"])

    def names(**params):
        return [s["name"] for s in b.client.list_collaborations(**params)["collaborationList"]]

    assert names() == ["left", "active", "invited"]  # newest first
    assert names(memberStatus="INVITED") == ["invited"]
    assert names(memberStatus="ACTIVE") == ["active"]
    for bad in ("LEFT", "REMOVED", "active", ""):
        response = raises("ValidationException", b.client.list_collaborations, memberStatus=bad)
        assert response["reason"] == "FIELD_VALIDATION_FAILED"
        assert response["fieldList"][0]["name"] == "memberStatus"
    by_id = {s["name"]: s for s in b.client.list_collaborations()["collaborationList"]}
    assert by_id["left"]["memberStatus"] == "LEFT" and "membershipId" not in by_id["left"]
    assert by_id["active"]["membershipArn"].startswith(f"arn:aws:cleanrooms:us-east-1:{b.id}:membership/")
    assert a.client.list_collaborations(memberStatus="ACTIVE")["collaborationList"][0]["name"] == "left"


def test_one_member_can_query(party):
    a, b = party(), party()
    raises("ValidationException", a.client.create_collaboration, members=[member(b, ["CAN_QUERY"])], name="n",
           creatorMemberAbilities=["CAN_QUERY"], creatorDisplayName="A", queryLogStatus="DISABLED")
    c = create_collaboration(a, [member(b, ["CAN_QUERY", "CAN_RECEIVE_RESULTS"])], abilities=[])
    assert c["memberStatus"] == "INVITED"
