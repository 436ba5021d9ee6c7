"""Collaboration change requests over HTTP with several accounts: propose, vote, cancel, commit, list, visibility."""

from __future__ import annotations

import re

import pytest

from tests.support.builders import all_pages, create_collaboration, join, member, raises

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ADD, GRANT, REVOKE, EDIT = ("ADD_MEMBER", "GRANT_RECEIVE_RESULTS_ABILITY", "REVOKE_RECEIVE_RESULTS_ABILITY",
                            "EDIT_AUTO_APPROVED_CHANGE_TYPES")


# ------------------------------------------------------------------------------------------------------ helpers


def member_change(party_or_account, abilities=(), display_name=..., **extra) -> dict:
    account = party_or_account if isinstance(party_or_account, str) else party_or_account.id
    spec = {"accountId": account, "memberAbilities": list(abilities)}
    if display_name is ...:
        display_name = f"new {account}"
    if display_name is not None:
        spec["displayName"] = display_name
    spec.update(extra)
    return {"specificationType": "MEMBER", "specification": {"member": spec}}


def auto_approve_change(types) -> dict:
    return {"specificationType": "COLLABORATION",
            "specification": {"collaboration": {"autoApprovedChangeTypes": list(types)}}}


def propose(creator, collaboration_id: str, *changes) -> dict:
    return creator.client.create_collaboration_change_request(collaborationIdentifier=collaboration_id,
                                                              changes=list(changes))["collaborationChangeRequest"]


def act(p, request: dict, action: str) -> dict:
    return p.client.update_collaboration_change_request(
        collaborationIdentifier=request["collaborationId"], changeRequestIdentifier=request["id"],
        action=action)["collaborationChangeRequest"]


def fetch(p, request: dict) -> dict:
    return p.client.get_collaboration_change_request(
        collaborationIdentifier=request["collaborationId"],
        changeRequestIdentifier=request["id"])["collaborationChangeRequest"]


def listed(p, collaboration_id: str, **params) -> list[dict]:
    return all_pages(p.client, "list_collaboration_change_requests", "collaborationChangeRequestSummaries",
                     collaborationIdentifier=collaboration_id, **params)


def members_of(p, collaboration_id: str) -> dict:
    return {m["accountId"]: m for m in
            p.client.list_members(collaborationIdentifier=collaboration_id)["memberSummaries"]}


def active_collaboration(party, *, invitees=0, **extra):
    """A collaboration whose creator (CAN_QUERY) and two other members (no abilities) have joined."""
    a, b, c = party(), party(), party()
    others = [party() for _ in range(invitees)]
    collaboration = create_collaboration(a, [member(b, [], "Bee"), member(c, [], "Cee")] +
                                         [member(o) for o in others], **extra)
    for p in (a, b, c):
        join(p, collaboration["id"])
    return collaboration, a, b, c, others


def same(view: dict) -> dict:
    """What must not change when a refused call has no side effect."""
    return {key: view.get(key) for key in ("status", "approvals", "updateTime", "changes", "isAutoApproved")}


# ---------------------------------------------------------------------------------------------------- the flow


def test_add_member_needs_every_active_member_then_commit_invites_the_account(party):
    collaboration, a, b, c, _ = active_collaboration(party)
    cid = collaboration["id"]
    newcomer = party()
    request = propose(a, cid, member_change(newcomer, ["CAN_RECEIVE_RESULTS"], "Newcomer"))
    assert UUID.match(request["id"]) and request["collaborationId"] == cid
    assert (request["status"], request["isAutoApproved"]) == ("PENDING", False)
    assert request["createTime"] == request["updateTime"]
    assert request["changes"] == [{
        "specificationType": "MEMBER",
        "specification": {"member": {"accountId": newcomer.id, "memberAbilities": ["CAN_RECEIVE_RESULTS"],
                                     "displayName": "Newcomer"}},
        "types": [ADD, GRANT],
    }]
    assert request["approvals"] == {a.id: {"status": "APPROVED"}, b.id: {"status": "PENDING"},
                                    c.id: {"status": "PENDING"}}
    # Nothing happens before the commit.
    raises("AccessDeniedException", newcomer.client.get_collaboration, collaborationIdentifier=cid)
    response = raises("ConflictException", act, a, request, "COMMIT")
    assert (response["reason"], response["resourceId"]) == ("INVALID_STATE", request["id"])

    after_b = act(b, request, "APPROVE")
    assert after_b["status"] == "PENDING" and after_b["approvals"][b.id] == {"status": "APPROVED"}
    assert after_b["approvals"][c.id] == {"status": "PENDING"}
    assert after_b["updateTime"] >= request["createTime"] and after_b["createTime"] == request["createTime"]
    approved = act(c, request, "APPROVE")
    assert approved["status"] == "APPROVED"
    assert set(v["status"] for v in approved["approvals"].values()) == {"APPROVED"}
    assert newcomer.id not in members_of(a, cid)

    committed = act(a, request, "COMMIT")
    assert committed["status"] == "COMMITTED" and committed["isAutoApproved"] is False
    assert committed["changes"] == request["changes"]
    assert fetch(b, request) == committed
    added = members_of(b, cid)[newcomer.id]
    assert (added["status"], added["displayName"], added["abilities"]) == ("INVITED", "Newcomer",
                                                                           ["CAN_RECEIVE_RESULTS"])
    assert added["paymentConfiguration"] == {"queryCompute": {"isResponsible": False}}
    assert "membershipId" not in added
    assert members_of(a, cid)[a.id]["paymentConfiguration"] == {"queryCompute": {"isResponsible": True}}

    # The new account sees the invitation everywhere an invitation shows, and joins.
    invited = newcomer.client.list_collaborations(memberStatus="INVITED")["collaborationList"]
    assert [(s["id"], s["memberStatus"]) for s in invited] == [(cid, "INVITED")]
    seen = newcomer.client.get_collaboration(collaborationIdentifier=cid)["collaboration"]
    assert seen["memberStatus"] == "INVITED" and seen["creatorAccountId"] == a.id
    assert fetch(newcomer, request)["status"] == "COMMITTED"
    membership = join(newcomer, cid)
    assert membership["memberAbilities"] == ["CAN_RECEIVE_RESULTS"]
    assert membership["paymentConfiguration"] == {"queryCompute": {"isResponsible": False}}
    assert members_of(a, cid)[newcomer.id]["status"] == "ACTIVE"
    assert [s["memberStatus"] for s in newcomer.client.list_collaborations()["collaborationList"]] == ["ACTIVE"]
    # A committed request is final.
    for p, action in ((a, "COMMIT"), (a, "CANCEL"), (b, "APPROVE")):
        assert raises("ConflictException", act, p, request, action)["reason"] == "INVALID_STATE"


def test_auto_approved_changes_take_effect_at_once(party):
    collaboration, a, b, c, _ = active_collaboration(party, autoApprovedChangeRequestTypes=["ADD_MEMBER"])
    cid = collaboration["id"]
    contributor, receiver = party(), party()
    request = propose(a, cid, member_change(contributor, [], "Contributor"))
    assert (request["status"], request["isAutoApproved"]) == ("COMMITTED", True)
    assert request["changes"][0]["types"] == [ADD]
    assert request["approvals"] == {a.id: {"status": "APPROVED"}}
    assert members_of(a, cid)[contributor.id]["status"] == "INVITED"
    assert [s["id"] for s in contributor.client.list_collaborations()["collaborationList"]] == [cid]
    for action in ("CANCEL", "COMMIT"):
        assert raises("ConflictException", act, a, request, action)["reason"] == "INVALID_STATE"
    for p, action in ((a, "APPROVE"), (b, "APPROVE"), (c, "DENY")):  # nobody was asked to vote
        raises("AccessDeniedException", act, p, request, action)

    # Receiving results is a second change type that is not auto-approved here.
    pending = propose(a, cid, member_change(receiver, ["CAN_RECEIVE_RESULTS"]))
    assert (pending["status"], pending["isAutoApproved"]) == ("PENDING", False)
    assert pending["changes"][0]["types"] == [ADD, GRANT]
    assert receiver.id not in members_of(a, cid)


def test_grant_and_revoke_receive_results(party):
    collaboration, a, b, c, _ = active_collaboration(party)
    cid = collaboration["id"]
    membership_b = b.client.list_memberships()["membershipSummaries"][0]
    assert membership_b["memberAbilities"] == []
    grant = propose(a, cid, member_change(b, ["CAN_RECEIVE_RESULTS"], None),
                    member_change(a, ["CAN_RECEIVE_RESULTS"], f"creator {a.id}"))
    assert [ch["types"] for ch in grant["changes"]] == [[GRANT], [GRANT]]
    assert "displayName" not in grant["changes"][0]["specification"]["member"]
    act(b, grant, "APPROVE")
    act(c, grant, "APPROVE")
    assert members_of(a, cid)[b.id]["abilities"] == []  # approved is not yet committed
    assert act(a, grant, "COMMIT")["status"] == "COMMITTED"
    members = members_of(c, cid)
    assert members[b.id]["abilities"] == ["CAN_RECEIVE_RESULTS"]
    assert members[a.id]["abilities"] == ["CAN_QUERY", "CAN_RECEIVE_RESULTS"]  # CAN_QUERY is kept
    assert members[a.id]["paymentConfiguration"] == {"queryCompute": {"isResponsible": True}}
    assert members[b.id]["displayName"] == "Bee"
    assert b.client.get_membership(membershipIdentifier=membership_b["id"])["membership"]["memberAbilities"] == \
        ["CAN_RECEIVE_RESULTS"]
    assert b.client.list_memberships()["membershipSummaries"][0]["memberAbilities"] == ["CAN_RECEIVE_RESULTS"]

    revoke = propose(a, cid, member_change(a, [], None))
    assert revoke["changes"][0]["types"] == [REVOKE] and revoke["status"] == "PENDING"
    act(b, revoke, "APPROVE")
    act(c, revoke, "APPROVE")
    act(a, revoke, "COMMIT")
    assert members_of(a, cid)[a.id]["abilities"] == ["CAN_QUERY"]


def test_edit_auto_approved_change_types(party):
    collaboration, a, b, c, _ = active_collaboration(party)
    cid = collaboration["id"]
    assert "autoApprovedChangeTypes" not in a.client.get_collaboration(collaborationIdentifier=cid)["collaboration"]
    edit = propose(a, cid, auto_approve_change(["ADD_MEMBER", "GRANT_RECEIVE_RESULTS_ABILITY"]))
    assert edit["changes"][0]["types"] == [EDIT] and edit["status"] == "PENDING"
    act(b, edit, "APPROVE")
    act(c, edit, "APPROVE")
    act(a, edit, "COMMIT")
    seen = b.client.get_collaboration(collaborationIdentifier=cid)["collaboration"]
    assert seen["autoApprovedChangeTypes"] == ["ADD_MEMBER", "GRANT_RECEIVE_RESULTS_ABILITY"]
    assert seen["updateTime"] > collaboration["updateTime"]

    newcomer = party()
    now_automatic = propose(a, cid, member_change(newcomer, ["CAN_RECEIVE_RESULTS"]),
                            member_change(b, ["CAN_RECEIVE_RESULTS"], None))
    assert (now_automatic["status"], now_automatic["isAutoApproved"]) == ("COMMITTED", True)
    members = members_of(a, cid)
    assert members[newcomer.id]["abilities"] == members[b.id]["abilities"] == ["CAN_RECEIVE_RESULTS"]

    # Editing the list itself is never auto-approved; an empty list turns auto-approval off.
    off = propose(a, cid, auto_approve_change([]))
    assert (off["status"], off["isAutoApproved"]) == ("PENDING", False)
    raises("AccessDeniedException", act, newcomer, off, "APPROVE")  # invited after the request was made
    act(b, off, "APPROVE")
    act(c, off, "APPROVE")
    act(a, off, "COMMIT")
    assert a.client.get_collaboration(collaborationIdentifier=cid)["collaboration"]["autoApprovedChangeTypes"] == []
    assert propose(a, cid, member_change(party()))["status"] == "PENDING"


def test_one_denial_denies_and_nothing_changes(party):
    collaboration, a, b, c, _ = active_collaboration(party)
    newcomer = party()
    request = propose(a, collaboration["id"], member_change(newcomer))
    denied = act(b, request, "DENY")
    assert denied["status"] == "DENIED"
    assert denied["approvals"] == {a.id: {"status": "APPROVED"}, b.id: {"status": "DENIED"},
                                   c.id: {"status": "PENDING"}}
    for p, action in ((c, "APPROVE"), (c, "DENY"), (b, "APPROVE"), (a, "COMMIT"), (a, "CANCEL")):
        response = raises("ConflictException", act, p, request, action)
        assert (response["reason"], response["resourceId"]) == ("INVALID_STATE", request["id"])
    assert same(fetch(c, request)) == same(denied)
    assert newcomer.id not in members_of(a, collaboration["id"])
    raises("AccessDeniedException", newcomer.client.get_collaboration, collaborationIdentifier=collaboration["id"])


def test_creator_cancels_pending_and_approved_requests(party):
    collaboration, a, b, c, _ = active_collaboration(party)
    cid = collaboration["id"]
    pending = propose(a, cid, member_change(party()))
    act(b, pending, "APPROVE")
    cancelled = act(a, pending, "CANCEL")
    assert cancelled["status"] == "CANCELLED" and cancelled["approvals"][b.id] == {"status": "APPROVED"}
    for p, action in ((c, "APPROVE"), (a, "COMMIT"), (a, "CANCEL")):
        assert raises("ConflictException", act, p, pending, action)["reason"] == "INVALID_STATE"

    newcomer = party()
    approved = propose(a, cid, member_change(newcomer))
    act(b, approved, "APPROVE")
    assert act(c, approved, "APPROVE")["status"] == "APPROVED"
    assert act(a, approved, "CANCEL")["status"] == "CANCELLED"
    raises("ConflictException", act, a, approved, "COMMIT")
    assert newcomer.id not in members_of(a, cid)


def test_votes_and_decisions_belong_to_the_right_callers(party):
    collaboration, a, b, c, (late,) = active_collaboration(party, invitees=1)
    request = propose(a, collaboration["id"], member_change(party()))
    assert set(request["approvals"]) == {a.id, b.id, c.id}  # the invitee has not joined: it does not vote
    join(late, collaboration["id"])
    before = fetch(a, request)
    for p, action in ((a, "APPROVE"), (a, "DENY"), (b, "CANCEL"), (b, "COMMIT"), (late, "APPROVE"),
                      (late, "DENY")):
        assert raises("AccessDeniedException", act, p, request, action)["reason"] == "INSUFFICIENT_PERMISSIONS"
    assert same(fetch(b, request)) == same(before)
    act(b, request, "APPROVE")
    for action in ("APPROVE", "DENY"):  # a vote is final
        assert raises("ConflictException", act, b, request, action)["reason"] == "INVALID_STATE"
    assert fetch(a, request)["status"] == "PENDING"


def test_without_other_active_members_a_request_is_approved_on_creation(party):
    a, invitee, newcomer = party(), party(), party()
    collaboration = create_collaboration(a, [member(invitee)])
    request = propose(a, collaboration["id"], member_change(newcomer))
    assert (request["status"], request["isAutoApproved"]) == ("APPROVED", False)
    assert request["approvals"] == {a.id: {"status": "APPROVED"}}
    assert newcomer.id not in members_of(a, collaboration["id"])
    act(a, request, "COMMIT")
    assert members_of(invitee, collaboration["id"])[newcomer.id]["status"] == "INVITED"


# ------------------------------------------------------------------------------------------------- validation


def _invalid_cases(a, b, c, removed, stranger):
    too_many = [member_change(f"{900000000000 + i}") for i in range(11)]
    return [
        ("CAN_QUERY", [member_change(stranger, ["CAN_QUERY"])], "changes.1.member.specification.member.memberAbilities",
         "FIELD_VALIDATION_FAILED"),
        ("CAN_RUN_JOB", [member_change(b, ["CAN_RECEIVE_RESULTS", "CAN_RUN_JOB"], None)],
         "changes.1.member.specification.member.memberAbilities", "FIELD_VALIDATION_FAILED"),
        ("type is MEMBER, spec is collaboration", [{"specificationType": "MEMBER", "specification": {
            "collaboration": {"autoApprovedChangeTypes": []}}}], "changes.1.member.specificationType",
         "FIELD_VALIDATION_FAILED"),
        ("type is COLLABORATION, spec is member", [{"specificationType": "COLLABORATION", "specification": {
            "member": member_change(stranger)["specification"]["member"]}}], "changes.1.member.specificationType",
         "FIELD_VALIDATION_FAILED"),
        ("no displayName for a new account", [member_change(stranger, [], None)],
         "changes.1.member.specification.member.displayName", "FIELD_VALIDATION_FAILED"),
        ("existing member, same abilities", [member_change(b, [], None)],
         "changes.1.member.specification.member.memberAbilities", "INVALID_CONFIGURATION"),
        ("existing creator, same abilities", [member_change(a, [], None)],
         "changes.1.member.specification.member.memberAbilities", "INVALID_CONFIGURATION"),
        ("renaming an existing member", [member_change(b, ["CAN_RECEIVE_RESULTS"], "Other name")],
         "changes.1.member.specification.member.displayName", "FIELD_VALIDATION_FAILED"),
        ("same account twice", [member_change(stranger), member_change(stranger, ["CAN_RECEIVE_RESULTS"])],
         "changes.2.member.specification.member.accountId", "FIELD_VALIDATION_FAILED"),
        ("existing member twice", [member_change(c, ["CAN_RECEIVE_RESULTS"], None),
                                   member_change(c, ["CAN_RECEIVE_RESULTS"], None)],
         "changes.2.member.specification.member.accountId", "FIELD_VALIDATION_FAILED"),
        ("removed member re-invited", [member_change(removed)], "changes.1.member.specification.member.accountId",
         "INVALID_CONFIGURATION"),
        ("new member would pay", [member_change(stranger, paymentConfiguration={
            "queryCompute": {"isResponsible": True}})], "changes.1.member.specification.member.paymentConfiguration",
         "INVALID_CONFIGURATION"),
        ("payer would stop paying", [member_change(a, ["CAN_RECEIVE_RESULTS"], None, paymentConfiguration={
            "queryCompute": {"isResponsible": False}})],
         "changes.1.member.specification.member.paymentConfiguration", "INVALID_CONFIGURATION"),
        ("ML abilities", [member_change(stranger, mlMemberAbilities={
            "customMLMemberAbilities": ["CAN_RECEIVE_MODEL_OUTPUT"]})],
         "changes.1.member.specification.member.mlMemberAbilities", "FIELD_VALIDATION_FAILED"),
        ("two collaboration changes", [auto_approve_change([GRANT]), auto_approve_change([])],
         "changes.2.member.specificationType", "FIELD_VALIDATION_FAILED"),
        ("collaboration change without a list", [{"specificationType": "COLLABORATION",
                                                  "specification": {"collaboration": {}}}],
         "changes.1.member.specification.collaboration.autoApprovedChangeTypes", "FIELD_VALIDATION_FAILED"),
        ("auto-approved list unchanged", [auto_approve_change(["ADD_MEMBER"])],
         "changes.1.member.specification.collaboration.autoApprovedChangeTypes", "INVALID_CONFIGURATION"),
        ("auto-approved list repeats a type", [auto_approve_change(["REVOKE_RECEIVE_RESULTS_ABILITY"] * 2)],
         "changes.1.member.specification.collaboration.autoApprovedChangeTypes", "FIELD_VALIDATION_FAILED"),
        ("eleven changes", too_many, "changes", "FIELD_VALIDATION_FAILED"),
        ("unknown ability", [member_change(stranger, ["CAN_FLY"])],
         "changes.1.member.specification.member.memberAbilities.1.member", "FIELD_VALIDATION_FAILED"),
    ]


def test_invalid_changes_are_refused_and_create_nothing(party):
    collaboration, a, b, c, (removed,) = active_collaboration(party, invitees=1,
                                                              autoApprovedChangeRequestTypes=["ADD_MEMBER"])
    cid = collaboration["id"]
    a.client.delete_member(collaborationIdentifier=cid, accountId=removed.id)
    stranger = party()
    problems = []
    for label, changes, field, reason in _invalid_cases(a, b, c, removed, stranger):
        response = raises("ValidationException", a.client.create_collaboration_change_request,
                          collaborationIdentifier=cid, changes=changes)
        got = (response.get("reason"), [f["name"] for f in response.get("fieldList", [])])
        if got != (reason, [field]):
            problems.append((label, got, response["Error"]["Message"]))
    assert problems == []
    assert listed(a, cid) == []
    assert set(members_of(a, cid)) == {a.id, b.id, c.id, removed.id}
    # The same changes made valid are accepted (so each refusal above is about what the case names).
    ok = propose(a, cid, member_change(stranger, ["CAN_RECEIVE_RESULTS"], paymentConfiguration={
        "queryCompute": {"isResponsible": False}}), member_change(b, ["CAN_RECEIVE_RESULTS"], "Bee"),
        member_change(a, ["CAN_RECEIVE_RESULTS"], None, paymentConfiguration={"queryCompute": {"isResponsible": True}}),
        auto_approve_change([]))
    assert [ch["types"] for ch in ok["changes"]] == [[ADD, GRANT], [GRANT], [GRANT], [EDIT]]


def test_members_quota_applies_when_proposing_and_when_committing(party):
    a, *invitees = [party() for _ in range(4)]  # the creator and 3 invitees: 2 more fit the default quota of 5
    collaboration = create_collaboration(a, [member(p) for p in invitees])
    cid = collaboration["id"]
    x, y, z = party(), party(), party()
    response = raises("ServiceQuotaExceededException", a.client.create_collaboration_change_request,
                      collaborationIdentifier=cid, changes=[member_change(p) for p in (x, y, z)])
    assert (response["quotaName"], response["quotaValue"]) == ("Members invited per collaboration", 5.0)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 402
    assert listed(a, cid) == []
    # Changing abilities of existing members does not count.
    propose(a, cid, member_change(invitees[0], ["CAN_RECEIVE_RESULTS"], None))
    first = propose(a, cid, member_change(x), member_change(y))
    second = propose(a, cid, member_change(z))  # fits now; no longer once `first` is committed
    assert first["status"] == second["status"] == "APPROVED"  # nobody else has joined: no one else votes
    act(a, first, "COMMIT")
    response = raises("ConflictException", act, a, second, "COMMIT")
    assert response["reason"] == "INVALID_STATE"
    assert "Members invited per collaboration" in response["Error"]["Message"]
    assert fetch(a, second)["status"] == "APPROVED"
    assert z.id not in members_of(a, cid)
    # A removed member frees its place.
    a.client.delete_member(collaborationIdentifier=cid, accountId=x.id)
    assert act(a, second, "COMMIT")["status"] == "COMMITTED"
    assert members_of(a, cid)[z.id]["status"] == "INVITED"


def test_commit_rechecks_the_collaboration_as_it_is_then(party):
    collaboration, a, b, c, _ = active_collaboration(party)
    cid = collaboration["id"]
    newcomer = party()
    invite_1 = propose(a, cid, member_change(newcomer, [], "First"))
    invite_2 = propose(a, cid, member_change(newcomer, [], "Second"))
    # Approved as an invitation, this would now only grant an ability to the member `invite_1` made.
    invite_3 = propose(a, cid, member_change(newcomer, ["CAN_RECEIVE_RESULTS"], "First"))
    grant_c = propose(a, cid, member_change(c, ["CAN_RECEIVE_RESULTS"], None))
    for request in (invite_1, invite_2, invite_3, grant_c):
        act(b, request, "APPROVE")
        act(c, request, "APPROVE")
    act(a, invite_1, "COMMIT")
    for request in (invite_2, invite_3):
        response = raises("ConflictException", act, a, request, "COMMIT")
        assert (response["reason"], response["resourceId"]) == ("INVALID_STATE", request["id"])
    added = members_of(a, cid)[newcomer.id]
    assert (added["displayName"], added["abilities"]) == ("First", [])
    c.client.delete_membership(membershipIdentifier=c.client.list_memberships()["membershipSummaries"][0]["id"])
    raises("ConflictException", act, a, grant_c, "COMMIT")
    assert members_of(a, cid)[c.id]["abilities"] == []
    assert {fetch(a, r)["status"] for r in (invite_2, invite_3, grant_c)} == {"APPROVED"}
    # Both can still be cancelled.
    assert act(a, invite_2, "CANCEL")["status"] == "CANCELLED"


# ------------------------------------------------------------------------------------------------------ lists


def test_list_is_newest_first_filters_by_status_and_pages(party):
    collaboration, a, b, c, _ = active_collaboration(party)
    cid = collaboration["id"]
    made = [propose(a, cid, member_change(party())) for _ in range(5)]
    act(b, made[0], "DENY")
    act(a, made[1], "CANCEL")
    act(b, made[2], "APPROVE")
    act(c, made[2], "APPROVE")
    ids = [r["id"] for r in made]
    everything = listed(b, cid, PaginationConfig={"PageSize": 2})
    assert [s["id"] for s in everything] == ids[::-1]
    assert everything[-1] == fetch(b, made[0])  # summaries carry what Get shows
    assert [s["status"] for s in everything] == ["PENDING", "PENDING", "APPROVED", "CANCELLED", "DENIED"]
    for status, expected in (("PENDING", [ids[4], ids[3]]), ("APPROVED", [ids[2]]), ("CANCELLED", [ids[1]]),
                             ("DENIED", [ids[0]]), ("COMMITTED", [])):
        assert [s["id"] for s in listed(c, cid, status=status, PaginationConfig={"PageSize": 1})] == expected
    first = b.client.list_collaboration_change_requests(collaborationIdentifier=cid, maxResults=2)
    assert len(first["collaborationChangeRequestSummaries"]) == 2 and first["nextToken"]
    rest = b.client.list_collaboration_change_requests(collaborationIdentifier=cid, nextToken=first["nextToken"])
    assert [s["id"] for s in rest["collaborationChangeRequestSummaries"]] == ids[2::-1]
    assert "nextToken" not in rest
    # Tokens are bound to the caller, the collaboration and the filter.
    for p, params in ((b, {"status": "PENDING"}), (c, {})):
        response = raises("ValidationException", p.client.list_collaboration_change_requests,
                          collaborationIdentifier=cid, nextToken=first["nextToken"], **params)
        assert response["fieldList"][0]["name"] == "nextToken"
    raises("ValidationException", b.client.list_collaboration_change_requests, collaborationIdentifier=cid,
           nextToken="garbage")
    response = raises("ValidationException", b.client.list_collaboration_change_requests,
                      collaborationIdentifier=cid, status="EXPIRED")
    assert response["fieldList"][0]["name"] == "status"
    raises("ValidationException", b.client.list_collaboration_change_requests, collaborationIdentifier=cid,
           maxResults=101)
    other, other_creator, *_ = active_collaboration(party)
    assert listed(other_creator, other["id"]) == []


# ------------------------------------------------------------------------------------------ who sees what


@pytest.fixture
def world(party):
    """A collaboration with one change request, and every kind of outsider."""
    collaboration, a, b, c, (invitee, removed, leaver) = active_collaboration(party, invitees=3)
    cid = collaboration["id"]
    join(removed, cid)
    join(leaver, cid)
    a.client.delete_member(collaborationIdentifier=cid, accountId=removed.id)
    leaving = leaver.client.list_memberships()["membershipSummaries"][0]["id"]
    leaver.client.delete_membership(membershipIdentifier=leaving)
    request = propose(a, cid, member_change(party()))
    assert set(request["approvals"]) == {a.id, b.id, c.id}
    elsewhere, other_creator, *_ = active_collaboration(party)
    foreign = propose(other_creator, elsewhere["id"], member_change(party()))
    return {"cid": cid, "a": a, "b": b, "c": c, "invitee": invitee, "removed": removed, "leaver": leaver,
            "stranger": party(), "request": request, "elsewhere": elsewhere, "other_creator": other_creator,
            "foreign": foreign}


def _outsiders(w):
    return [w["stranger"], w["removed"], w["leaver"], w["other_creator"]]


def test_outsiders_cannot_create_and_learn_nothing(world):
    w = world
    for p in _outsiders(w) + [w["invitee"], w["b"]]:
        for cid in (w["cid"], UNKNOWN_ID):
            response = raises("AccessDeniedException", p.client.create_collaboration_change_request,
                              collaborationIdentifier=cid, changes=[member_change(p, [], "me")])
            assert response["reason"] == "INSUFFICIENT_PERMISSIONS"
    stranger = w["stranger"].client
    known = raises("AccessDeniedException", stranger.create_collaboration_change_request,
                   collaborationIdentifier=w["cid"], changes=[member_change(w["stranger"])])
    unknown = raises("AccessDeniedException", stranger.create_collaboration_change_request,
                     collaborationIdentifier=UNKNOWN_ID, changes=[member_change(w["stranger"])])
    assert known["Error"]["Message"].replace(w["cid"], "X") == unknown["Error"]["Message"].replace(UNKNOWN_ID, "X")
    assert [r["id"] for r in listed(w["a"], w["cid"])] == [w["request"]["id"]]
    assert set(members_of(w["a"], w["cid"])) == {w[k].id for k in ("a", "b", "c", "invitee", "removed", "leaver")}


def test_outsiders_cannot_get_or_list_and_learn_nothing(world):
    w = world
    cid, request = w["cid"], w["request"]
    for p in _outsiders(w):
        for collaboration_id in (cid, UNKNOWN_ID):
            raises("AccessDeniedException", p.client.get_collaboration_change_request,
                   collaborationIdentifier=collaboration_id, changeRequestIdentifier=request["id"])
            raises("AccessDeniedException", p.client.list_collaboration_change_requests,
                   collaborationIdentifier=collaboration_id)
    stranger = w["stranger"].client
    known = raises("AccessDeniedException", stranger.list_collaboration_change_requests, collaborationIdentifier=cid)
    unknown = raises("AccessDeniedException", stranger.list_collaboration_change_requests,
                     collaborationIdentifier=UNKNOWN_ID)
    assert known["Error"]["Message"].replace(cid, "X") == unknown["Error"]["Message"].replace(UNKNOWN_ID, "X")
    # A member of another collaboration asking through its own: a foreign id is as unknown as a made-up one.
    other, elsewhere = w["other_creator"].client, w["elsewhere"]["id"]
    foreign = raises("ResourceNotFoundException", other.get_collaboration_change_request,
                     collaborationIdentifier=elsewhere, changeRequestIdentifier=request["id"])
    made_up = raises("ResourceNotFoundException", other.get_collaboration_change_request,
                     collaborationIdentifier=elsewhere, changeRequestIdentifier=UNKNOWN_ID)
    assert foreign["Error"]["Message"].replace(request["id"], "X") == \
        made_up["Error"]["Message"].replace(UNKNOWN_ID, "X")
    assert (foreign["resourceId"], foreign["resourceType"]) == (request["id"], "COLLABORATION")
    assert [r["id"] for r in listed(w["other_creator"], elsewhere)] == [w["foreign"]["id"]]
    raises("ResourceNotFoundException", w["a"].client.get_collaboration_change_request,
           collaborationIdentifier=cid, changeRequestIdentifier=w["foreign"]["id"])
    # An invitee that has not joined yet reads them, like the member list.
    assert fetch(w["invitee"], request) == fetch(w["b"], request)
    assert [r["id"] for r in listed(w["invitee"], cid)] == [request["id"]]


def test_outsiders_cannot_update_and_change_nothing(world):
    w = world
    cid, request = w["cid"], w["request"]
    before = fetch(w["a"], request)
    for p in _outsiders(w):
        for action in ("APPROVE", "DENY", "CANCEL", "COMMIT"):
            for collaboration_id in (cid, UNKNOWN_ID):
                raises("AccessDeniedException", p.client.update_collaboration_change_request,
                       collaborationIdentifier=collaboration_id, changeRequestIdentifier=request["id"], action=action)
    for action in ("APPROVE", "DENY", "CANCEL", "COMMIT"):
        raises("AccessDeniedException", act, w["invitee"], request, action)
        raises("ResourceNotFoundException", w["other_creator"].client.update_collaboration_change_request,
               collaborationIdentifier=w["elsewhere"]["id"], changeRequestIdentifier=request["id"], action=action)
        raises("ResourceNotFoundException", w["a"].client.update_collaboration_change_request,
               collaborationIdentifier=cid, changeRequestIdentifier=w["foreign"]["id"], action=action)
        raises("ResourceNotFoundException", w["b"].client.update_collaboration_change_request,
               collaborationIdentifier=cid, changeRequestIdentifier=UNKNOWN_ID, action=action)
    assert fetch(w["b"], request) == before
    assert fetch(w["other_creator"], w["foreign"])["status"] == "PENDING"
    # Still fully workable by those it belongs to.
    act(w["b"], request, "APPROVE")
    assert act(w["c"], request, "APPROVE")["status"] == "APPROVED"


def test_deleted_collaboration_takes_its_change_requests_with_it(party):
    collaboration, a, b, c, _ = active_collaboration(party)
    request = propose(a, collaboration["id"], member_change(party()))
    a.client.delete_collaboration(collaborationIdentifier=collaboration["id"])
    for p in (a, b):
        raises("AccessDeniedException", fetch, p, request)
        raises("AccessDeniedException", p.client.list_collaboration_change_requests,
               collaborationIdentifier=collaboration["id"])
        raises("AccessDeniedException", act, p, request, "APPROVE" if p is b else "CANCEL")
