"""Tags on collaborations and memberships: owner only, merge, remove, limits, reserved keys, cleanup.

Runs on the pytest plugin's server (opencleanrooms.testing.plugin), as a team testing its own code would.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support import conformance
from tests.support.builders import create_collaboration, join, member, raises


@pytest.fixture
def party(cleanrooms_accounts):
    """Factory: fresh plugin accounts, their clients checked against the model like the rest of the suite's."""
    names = (f"party{i}" for i in itertools.count())

    def make():
        account = cleanrooms_accounts[next(names)]
        conformance.install(account.client)
        return account

    return make


def test_tag_lifecycle_on_a_collaboration(party):
    a = party()
    c = create_collaboration(a, tags={"env": "dev", "team": "x"})
    arn = c["arn"]
    assert a.client.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "dev", "team": "x"}
    a.client.tag_resource(resourceArn=arn, tags={"env": "prod", "cost": ""})
    assert a.client.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "prod", "team": "x", "cost": ""}
    a.client.untag_resource(resourceArn=arn, tagKeys=["team", "absent"])
    assert a.client.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "prod", "cost": ""}


def test_only_the_owner_sees_and_changes_tags(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b)], tags={"k": "v"})
    m = join(b, c["id"], tags={"mine": "yes"})
    for caller, arn in ((b, c["arn"]), (a, m["arn"])):
        response = raises("ResourceNotFoundException", caller.client.list_tags_for_resource, resourceArn=arn)
        assert response["resourceId"] == arn
        raises("ResourceNotFoundException", caller.client.tag_resource, resourceArn=arn, tags={"x": "y"})
        raises("ResourceNotFoundException", caller.client.untag_resource, resourceArn=arn, tagKeys=["k"])
    assert a.client.list_tags_for_resource(resourceArn=c["arn"])["tags"] == {"k": "v"}
    assert b.client.list_tags_for_resource(resourceArn=m["arn"])["tags"] == {"mine": "yes"}


def test_unknown_foreign_region_and_deleted_resources_are_not_found(party):
    a, b = party(), party()
    c = create_collaboration(a, [member(b)])
    for arn in (
        c["arn"].replace(c["id"], "00000000-0000-4000-8000-000000000000"),
        c["arn"].replace("us-east-1", "eu-west-1"),
        f"arn:aws:cleanrooms:us-east-1:{a.id}:configuredtable/00000000-0000-4000-8000-000000000000",
    ):
        raises("ResourceNotFoundException", a.client.list_tags_for_resource, resourceArn=arn)
    m = join(b, c["id"], tags={"t": "1"})
    a.client.delete_collaboration(collaborationIdentifier=c["id"])
    raises("ResourceNotFoundException", a.client.list_tags_for_resource, resourceArn=c["arn"])
    assert b.client.list_tags_for_resource(resourceArn=m["arn"])["tags"] == {"t": "1"}  # COLLABORATION_DELETED
    b.client.delete_membership(membershipIdentifier=m["id"])
    raises("ResourceNotFoundException", b.client.list_tags_for_resource, resourceArn=m["arn"])


def test_tag_limits_and_reserved_keys(cleanrooms_server, party):
    a = party()
    c = create_collaboration(a)
    response = raises("ValidationException", a.client.tag_resource, resourceArn=c["arn"], tags={"aws:x": "y"})
    assert response["fieldList"][0]["name"] == "tags"
    a.client.tag_resource(resourceArn=c["arn"], tags={f"k{i}": "v" for i in range(50)})
    raises("ValidationException", a.client.tag_resource, resourceArn=c["arn"], tags={"one-too-many": "v"})
    unchecked = cleanrooms_server.client(a, parameter_validation=False)
    raises("ValidationException", unchecked.tag_resource, resourceArn=c["arn"], tags={"k" * 129: "v"})
    raises("ValidationException", unchecked.tag_resource, resourceArn=c["arn"], tags={"k": "v" * 257})
    raises("ValidationException", unchecked.list_tags_for_resource, resourceArn="not-an-arn")
    assert len(a.client.list_tags_for_resource(resourceArn=c["arn"])["tags"]) == 50
