"""CreateMembership in process, over a private database of the backend under test."""

from __future__ import annotations

import time

import pytest

from opencleanrooms.errors import ServiceError
from opencleanrooms.services import collaborations, memberships
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import PageTokens
from opencleanrooms.services.quotas import Quotas
from opencleanrooms.storage import memberships as membership_store
from opencleanrooms.storage.database import Database
from tests.support.backend import database_url

CREATOR, JOINER = "111111111111", "222222222222"


@pytest.fixture
def ctx_for(tmp_path):
    db = Database(database_url(tmp_path))
    db.migrate()

    def ctx(account_id: str, operation: str) -> RequestContext:
        return RequestContext(request_id="r", account_id=account_id, region="us-east-1", operation=operation,
                              now=time.time(), db=db, tokens=PageTokens(b"k" * 32), quotas=Quotas())

    yield ctx
    db.dispose()


def test_a_membership_that_exists_though_the_member_row_says_invited_is_a_conflict(ctx_for):
    """The unique key is the last word on "already joined": a duplicate found only when the write transaction ends
    is ConflictException ALREADY_EXISTS, never an internal error (the review defect of issue 9)."""
    collaboration = collaborations.create_collaboration(ctx_for(CREATOR, "CreateCollaboration"), {
        "members": [{"accountId": JOINER, "memberAbilities": [], "displayName": "joiner"}], "name": "c",
        "creatorMemberAbilities": ["CAN_QUERY"], "creatorDisplayName": "creator", "queryLogStatus": "DISABLED",
    })["collaboration"]
    ctx = ctx_for(JOINER, "CreateMembership")
    with ctx.db.write() as conn:  # what a concurrent join that committed first leaves behind, as the key sees it
        membership_store.insert(conn, {
            "id": "00000000-0000-4000-8000-000000000001", "region": "us-east-1", "arn": "arn:x",
            "account_id": JOINER, "collaboration_id": collaboration["id"], "status": "ACTIVE",
            "create_time": ctx.now, "update_time": ctx.now, "doc": {},
        })
    with pytest.raises(ServiceError) as caught:
        memberships.create_membership(ctx, {"collaborationIdentifier": collaboration["id"],
                                            "queryLogStatus": "DISABLED"})
    assert caught.value.code == "ConflictException"
    assert caught.value.fields.get("reason") == "ALREADY_EXISTS"
