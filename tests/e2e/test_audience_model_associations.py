"""Configured audience model associations over HTTP, with several accounts: lifecycle, who may do what, validation
and pagination. Every response is checked against the model by the clients' conformance hook."""

from __future__ import annotations

import time

import pytest

from opencleanrooms.errors import ServiceError
from opencleanrooms.services import tags as tag_service
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import PageTokens
from opencleanrooms.services.quotas import Quotas
from opencleanrooms.services.registry import load_all
from opencleanrooms.storage import tags as tag_store
from tests.e2e.test_table_associations import collaborate
from tests.support.builders import all_pages, raises

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
KIND = "configuredaudiencemodelassociation"


def model_arn(p, name="lookalike-1", region="us-east-1") -> str:
    return f"arn:aws:cleanrooms-ml:{region}:{p.id}:configured-audience-model/{name}"


def associate(p, membership_id, model=None, name="lookalike", **extra) -> dict:
    extra.setdefault("manageResourcePolicies", True)
    return p.client.create_configured_audience_model_association(
        membershipIdentifier=membership_id, configuredAudienceModelArn=model or model_arn(p),
        configuredAudienceModelAssociationName=name, **extra)["configuredAudienceModelAssociation"]


def get(p, membership_id, association_id) -> dict:
    return p.client.get_configured_audience_model_association(
        membershipIdentifier=membership_id,
        configuredAudienceModelAssociationIdentifier=association_id)["configuredAudienceModelAssociation"]


def get_shared(p, collaboration_id, association_id) -> dict:
    return p.client.get_collaboration_configured_audience_model_association(
        collaborationIdentifier=collaboration_id, configuredAudienceModelAssociationIdentifier=association_id
    )["collaborationConfiguredAudienceModelAssociation"]


def summaries(p, membership_id, **extra) -> list[dict]:
    return all_pages(p.client, "list_configured_audience_model_associations",
                     "configuredAudienceModelAssociationSummaries", membershipIdentifier=membership_id, **extra)


def shared_summaries(p, collaboration_id, **extra) -> list[dict]:
    return all_pages(p.client, "list_collaboration_configured_audience_model_associations",
                     "collaborationConfiguredAudienceModelAssociationSummaries",
                     collaborationIdentifier=collaboration_id, **extra)


@pytest.fixture
def world(party):
    """Alice (creator, can query), Bob (joined) and Carol (invited, never joined)."""
    alice, bob, carol = party(), party(), party()
    return alice, bob, carol, collaborate(alice, bob, invited=[carol])


def test_association_lifecycle(server, world):
    alice, bob, carol, collab = world
    mid = collab.mid(bob)  # the model's owner need not be able to query
    a = associate(bob, mid, name="Lookalike  model ✓", description="seed audiences\nQ3", tags={"team": "ads"},
                  manageResourcePolicies=False)
    assert a["arn"] == f"arn:aws:cleanrooms:us-east-1:{bob.id}:membership/{mid}/{KIND}/{a['id']}"
    assert (a["membershipId"], a["membershipArn"]) == (mid, collab.memberships[bob.id]["arn"])
    assert (a["collaborationId"], a["collaborationArn"]) == (collab.id, collab.collaboration["arn"])
    assert (a["name"], a["description"], a["configuredAudienceModelArn"]) == (
        "Lookalike  model ✓", "seed audiences\nQ3", model_arn(bob))
    assert a["manageResourcePolicies"] is False and a["createTime"] == a["updateTime"]
    assert get(bob, mid, a["id"]) == a
    fields = ("membershipId", "membershipArn", "collaborationArn", "collaborationId", "createTime", "updateTime",
              "id", "arn", "name", "configuredAudienceModelArn", "description")
    assert summaries(bob, mid) == [{k: a[k] for k in fields}]
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {"team": "ads"}

    # every INVITED or ACTIVE member reads it through the collaboration, without the owner's membership details
    shared = {k: a[k] for k in ("id", "arn", "collaborationId", "collaborationArn", "configuredAudienceModelArn",
                                "name", "description", "createTime", "updateTime")}
    shared["creatorAccountId"] = bob.id
    for reader in (alice, bob, carol):
        assert get_shared(reader, collab.id, a["id"]) == shared
        assert shared_summaries(reader, collab.id) == [{k: v for k, v in shared.items()
                                                        if k != "configuredAudienceModelArn"}]

    time.sleep(0.01)
    updated = bob.client.update_configured_audience_model_association(
        membershipIdentifier=mid, configuredAudienceModelAssociationIdentifier=a["id"], name="renamed",
        description="")["configuredAudienceModelAssociation"]
    assert (updated["name"], updated["description"]) == ("renamed", "")
    assert updated["createTime"] == a["createTime"] and updated["updateTime"] > a["updateTime"]
    assert {k: updated[k] for k in ("arn", "configuredAudienceModelArn", "manageResourcePolicies")} == \
        {k: a[k] for k in ("arn", "configuredAudienceModelArn", "manageResourcePolicies")}
    assert get(bob, mid, a["id"]) == updated
    assert summaries(bob, mid)[0]["name"] == "renamed"
    assert get_shared(alice, collab.id, a["id"])["name"] == "renamed"
    assert shared_summaries(alice, collab.id)[0]["updateTime"] == updated["updateTime"]

    # the membership cannot be left while it has the association
    response = raises("ConflictException", bob.client.delete_membership, membershipIdentifier=mid)
    assert response["reason"] == "SUBRESOURCES_EXIST"
    assert "1 configured audience model association" in response["Error"]["Message"]

    response = bob.client.delete_configured_audience_model_association(
        membershipIdentifier=mid, configuredAudienceModelAssociationIdentifier=a["id"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    response = raises("ResourceNotFoundException", get, bob, mid, a["id"])
    assert (response["resourceId"], response["resourceType"]) == (a["id"], "MEMBERSHIP")
    raises("ResourceNotFoundException", get_shared, alice, collab.id, a["id"])
    assert summaries(bob, mid) == [] and shared_summaries(alice, collab.id) == []
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {}
    raises("ResourceNotFoundException", bob.client.delete_configured_audience_model_association,
           membershipIdentifier=mid, configuredAudienceModelAssociationIdentifier=a["id"])
    bob.client.delete_membership(membershipIdentifier=mid)  # nothing left: it can leave


def test_the_model_reference_is_checked_in_form(server, world, party):
    alice, bob, _, collab = world
    mid = collab.mid(alice)
    loose = server.client(alice.account, parameter_validation=False)  # the server, not boto3, must refuse

    def create(**params):
        request = {"membershipIdentifier": mid, "configuredAudienceModelArn": model_arn(alice),
                   "configuredAudienceModelAssociationName": "n", "manageResourcePolicies": True, **params}
        return loose.create_configured_audience_model_association(**{k: v for k, v in request.items()
                                                                     if v is not None})

    for arn, why in ((model_arn(bob), "belongs to account"),
                     (model_arn(alice, region="eu-west-1"), "is in region eu-west-1"),
                     (f"arn:aws-cn:cleanrooms-ml:us-east-1:{alice.id}:configured-audience-model/m", "partition")):
        response = raises("ValidationException", associate, alice, mid, arn)
        assert response["reason"] == "INVALID_CONFIGURATION" and why in response["Error"]["Message"], response
        assert [f["name"] for f in response["fieldList"]] == ["configuredAudienceModelArn"]
    for arn in ("arn:aws:cleanrooms-ml:us-east-1:1234:configured-audience-model/m",  # the model's pattern
                f"arn:aws:cleanrooms-ml:us-east-1:{alice.id}:audience-model/m", "not an arn"):
        response = raises("ValidationException", create, configuredAudienceModelArn=arn)
        assert [f["name"] for f in response["fieldList"]] == ["configuredAudienceModelArn"], response
    for params in ({"configuredAudienceModelAssociationName": ""},
                   {"configuredAudienceModelAssociationName": "x" * 101},
                   {"configuredAudienceModelAssociationName": "   "}, {"description": "d" * 256},
                   {"manageResourcePolicies": None}, {"manageResourcePolicies": "yes"}, {"tags": {"aws:k": "x"}}):
        raises("ValidationException", create, **params)
    assert summaries(alice, mid) == []

    a = associate(alice, mid, model_arn(alice, "lookalike/v2.1_x"))
    # a model is associated with a collaboration once, whoever asks again
    response = raises("ConflictException", associate, alice, mid, model_arn(alice, "lookalike/v2.1_x"), name="again")
    assert (response["reason"], response["resourceType"]) == ("ALREADY_EXISTS", "MEMBERSHIP")
    # the same name is fine for another model; the same model is fine in another collaboration
    associate(alice, mid, model_arn(alice, "other"), name="lookalike")
    other = collaborate(alice, party())
    associate(alice, other.mid(alice), model_arn(alice, "lookalike/v2.1_x"))
    raises("ValidationException", loose.update_configured_audience_model_association,
           membershipIdentifier=mid, configuredAudienceModelAssociationIdentifier=a["id"], name="")
    raises("ResourceNotFoundException", associate, alice, UNKNOWN_ID)


def test_a_removed_member_keeps_only_cleanup(world):
    alice, bob, carol, collab = world
    mid = collab.mid(bob)
    a = associate(bob, mid)
    alice.client.delete_member(collaborationIdentifier=collab.id, accountId=bob.id)
    response = raises("ConflictException", associate, bob, mid, model_arn(bob, "new"))
    assert response["reason"] == "INVALID_STATE"
    raises("AccessDeniedException", bob.client.update_configured_audience_model_association,
           membershipIdentifier=mid, configuredAudienceModelAssociationIdentifier=a["id"], name="n")
    assert get(bob, mid, a["id"])["id"] == a["id"]
    assert [s["id"] for s in summaries(bob, mid)] == [a["id"]]
    # it leaves the collaboration with its member, and the removed member reads the collaboration no more
    assert shared_summaries(alice, collab.id) == []
    raises("ResourceNotFoundException", get_shared, alice, collab.id, a["id"])
    raises("AccessDeniedException", shared_summaries, bob, collab.id)
    bob.client.delete_configured_audience_model_association(membershipIdentifier=mid,
                                                            configuredAudienceModelAssociationIdentifier=a["id"])
    bob.client.delete_membership(membershipIdentifier=mid)


def _membership_calls(client, membership_id: str, association_id: str, model: str) -> list:
    ids = {"membershipIdentifier": membership_id, "configuredAudienceModelAssociationIdentifier": association_id}
    return [
        ("create", client.create_configured_audience_model_association,
         {"membershipIdentifier": membership_id, "configuredAudienceModelArn": model,
          "configuredAudienceModelAssociationName": "stolen", "manageResourcePolicies": True}),
        ("get", client.get_configured_audience_model_association, ids),
        ("update", client.update_configured_audience_model_association, {**ids, "name": "x"}),
        ("delete", client.delete_configured_audience_model_association, ids),
        ("list", client.list_configured_audience_model_associations, {"membershipIdentifier": membership_id}),
    ]


def _collaboration_calls(client, collaboration_id: str, association_id: str) -> list:
    return [
        ("get", client.get_collaboration_configured_audience_model_association,
         {"collaborationIdentifier": collaboration_id, "configuredAudienceModelAssociationIdentifier": association_id}),
        ("list", client.list_collaboration_configured_audience_model_associations,
         {"collaborationIdentifier": collaboration_id}),
    ]


def test_other_accounts_reach_no_association(server, party):
    alice, bob, invitee, outsider, stranger = (party() for _ in range(5))
    collab = collaborate(alice, bob, invited=[invitee])
    other = collaborate(outsider, party())  # the outsider is active in another collaboration
    mid = collab.mid(alice)
    a = associate(alice, mid, tags={"k": "v"})

    def owner_view():
        return get(alice, mid, a["id"]), summaries(alice, mid), shared_summaries(alice, collab.id)

    before = owner_view()
    attackers = {"member": (bob, collab.mid(bob)), "invitee": (invitee, None), "other": (outsider, other.mid(outsider)),
                 "stranger": (stranger, None)}
    for role, (p, own_mid) in attackers.items():
        # (the caller's own model: Alice's is refused from the request alone, before any membership is looked up)
        for (name, call, params), (_, unknown_call, unknown_params) in zip(
                _membership_calls(p.client, mid, a["id"], model_arn(p)),
                _membership_calls(p.client, UNKNOWN_ID, a["id"], model_arn(p))):
            foreign = raises("ResourceNotFoundException", call, **params)
            unknown = raises("ResourceNotFoundException", unknown_call, **unknown_params)
            assert (foreign["resourceType"], foreign["resourceId"]) == ("MEMBERSHIP", mid), (role, name)
            assert foreign["Error"]["Message"].replace(mid, "X") == \
                unknown["Error"]["Message"].replace(UNKNOWN_ID, "X"), (role, name)
        if own_mid:  # Alice's association id under the attacker's own membership does not exist there either
            for name, call, params in _membership_calls(p.client, own_mid, a["id"], model_arn(p))[1:4]:
                response = raises("ResourceNotFoundException", call, **params)
                assert (response["resourceType"], response["resourceId"]) == ("MEMBERSHIP", a["id"]), (role, name)
            # nor can Alice's model be associated through the attacker's own membership
            response = raises("ValidationException", associate, p, own_mid, model_arn(alice))
            assert response["reason"] == "INVALID_CONFIGURATION"
            assert summaries(p, own_mid) == []
        if role in ("member", "invitee"):  # members read the collaboration's associations
            assert get_shared(p, collab.id, a["id"])["id"] == a["id"]
            continue
        for (name, call, params), (_, unknown_call, unknown_params) in zip(
                _collaboration_calls(p.client, collab.id, a["id"]), _collaboration_calls(p.client, UNKNOWN_ID,
                                                                                          a["id"])):
            denied = raises("AccessDeniedException", call, **params)
            unknown = raises("AccessDeniedException", unknown_call, **unknown_params)
            assert denied["Error"]["Message"].replace(collab.id, "X") == \
                unknown["Error"]["Message"].replace(UNKNOWN_ID, "X"), (role, name)
        if own_mid:  # nor does the association show through the attacker's own collaboration
            response = raises("ResourceNotFoundException", get_shared, p, other.id, a["id"])
            assert response["resourceId"] == a["id"]
            assert shared_summaries(p, other.id) == []
        for call, extra in ((p.client.list_tags_for_resource, {}), (p.client.tag_resource, {"tags": {"x": "y"}}),
                            (p.client.untag_resource, {"tagKeys": ["k"]})):
            raises("ValidationException", call, resourceArn=a["arn"], **extra)  # longer than the model allows
    assert owner_view() == before
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {"k": "v"}


def test_tags_resolve_association_arns_for_their_owner_only(server, world):
    """Association ARNs are longer than the 100 characters the model allows the tag operations, so those refuse
    them as input (as on AWS); behind that check the tag operations resolve them for their owner only."""
    load_all()
    alice, bob, _, collab = world
    a = associate(alice, collab.mid(alice), tags={"env": "dev"})
    raises("ValidationException", alice.client.list_tags_for_resource, resourceArn=a["arn"])

    def ctx(p, operation):
        return RequestContext(request_id="r", account_id=p.id, region="us-east-1", operation=operation,
                              now=time.time(), db=server.db, tokens=PageTokens(b"k" * 32), quotas=Quotas())

    assert tag_service.list_tags_for_resource(ctx(alice, "ListTagsForResource"), {"resourceArn": a["arn"]}) == {
        "tags": {"env": "dev"}}
    tag_service.tag_resource(ctx(alice, "TagResource"), {"resourceArn": a["arn"], "tags": {"k": "v"}})
    foreign = a["arn"].replace(alice.id, bob.id)
    for p, arn in ((bob, a["arn"]), (bob, foreign), (alice, a["arn"].replace(a["id"], UNKNOWN_ID))):
        with pytest.raises(ServiceError) as info:
            tag_service.list_tags_for_resource(ctx(p, "ListTagsForResource"), {"resourceArn": arn})
        assert info.value.code == "ResourceNotFoundException"
    with server.db.read() as conn:
        assert tag_store.get(conn, a["arn"]) == {"env": "dev", "k": "v"}


def test_pagination(server, world):
    alice, bob, _, collab = world
    made = [associate(alice if i % 2 else bob, collab.mid(alice if i % 2 else bob),
                      model_arn(alice if i % 2 else bob, f"m{i}"), name=f"n{i}") for i in range(7)]
    mine = [m["id"] for m in reversed(made) if m["membershipId"] == collab.mid(alice)]
    pages = list(alice.client.get_paginator("list_configured_audience_model_associations").paginate(
        membershipIdentifier=collab.mid(alice), PaginationConfig={"PageSize": 2}))
    assert [len(p["configuredAudienceModelAssociationSummaries"]) for p in pages] == [2, 1]
    assert [s["id"] for p in pages for s in p["configuredAudienceModelAssociationSummaries"]] == mine  # newest first
    pages = list(bob.client.get_paginator("list_collaboration_configured_audience_model_associations").paginate(
        collaborationIdentifier=collab.id, PaginationConfig={"PageSize": 3}))
    assert [len(p["collaborationConfiguredAudienceModelAssociationSummaries"]) for p in pages] == [3, 3, 1]
    assert [s["id"] for p in pages for s in p["collaborationConfiguredAudienceModelAssociationSummaries"]] == \
        [m["id"] for m in reversed(made)]
    token = alice.client.list_configured_audience_model_associations(
        membershipIdentifier=collab.mid(alice), maxResults=1)["nextToken"]
    # a token is bound to its caller and its membership
    raises("ValidationException", bob.client.list_configured_audience_model_associations,
           membershipIdentifier=collab.mid(bob), nextToken=token)
    raises("ValidationException", alice.client.list_collaboration_configured_audience_model_associations,
           collaborationIdentifier=collab.id, nextToken=token)
    loose = server.client(alice.account, parameter_validation=False)
    for size in (0, 101):
        raises("ValidationException", loose.list_configured_audience_model_associations,
               membershipIdentifier=collab.mid(alice), maxResults=size)
        raises("ValidationException", loose.list_collaboration_configured_audience_model_associations,
               collaborationIdentifier=collab.id, maxResults=size)
