"""Memberships: joining a collaboration, reading and changing one's own membership, leaving, listing."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from opencleanrooms.errors import ServiceError
from opencleanrooms.services import arns, errors, locks, payment, summaries
from opencleanrooms.services.access import member_view, owned_membership
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import collaborations as collaboration_store
from opencleanrooms.storage import memberships as store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import DuplicateError

_DOC_FIELDS = ("queryLogStatus", "jobLogStatus", "defaultResultConfiguration", "defaultJobResultConfiguration",
               "isMetricsEnabled")
# Checks that a membership still owns sub-resources (associations, templates, ...): each returns a description
# of what is left, or None. Families register theirs; DeleteMembership refuses while any reports something.
SUBRESOURCE_CHECKS: list[Callable[[sa.Connection, str], str | None]] = []
_CREATOR_CANNOT_LEAVE = ("Cannot delete membership for the creator of the collaboration while their membership "
                         "is still ACTIVE")


@operation("CreateMembership")
def create_membership(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]
    check_new_resource_tags(params.get("tags") or {})
    membership_id = arns.new_id()
    try:
        row = _join(ctx, params, collaboration_id, membership_id)
    except DuplicateError:  # storage raises it as the transaction ends: a membership row without an ACTIVE member row
        raise _already_joined(collaboration_id, "ACTIVE") from None
    return {"membership": membership_view(row)}


def _join(ctx: RequestContext, params: dict, collaboration_id: str, membership_id: str):
    # The collaboration's key serialises joins of its members (each rewrites every member's summary); the
    # account's key makes the memberships quota's count-then-insert atomic.
    with ctx.db.write(locks=[locks.collaboration(collaboration_id), locks.account(ctx)]) as conn:
        collaboration, member = member_view(conn, ctx, collaboration_id)
        if member["status"] != "INVITED":
            raise _already_joined(collaboration_id, member["status"])
        member_doc = member["doc"]
        payment.check_acceptance(member_doc["paymentConfiguration"], params.get("paymentConfiguration"),
                                 member_doc["abilities"], required=True)
        if params.get("isMetricsEnabled") and not collaboration["doc"].get("isMetricsEnabled"):
            raise errors.invalid_configuration("isMetricsEnabled can only be set when the collaboration has metrics "
                                               "enabled.")
        ctx.quotas.check("memberships", store.count_for_account(conn, ctx.region, ctx.account_id) + 1)
        doc = {key: params[key] for key in _DOC_FIELDS if key in params}
        doc.setdefault("isMetricsEnabled", False)
        arn = arns.membership_arn(ctx.region, ctx.account_id, membership_id)
        store.insert(conn, {
            "id": membership_id, "region": ctx.region, "arn": arn, "account_id": ctx.account_id,
            "collaboration_id": collaboration_id, "status": "ACTIVE", "create_time": ctx.now,
            "update_time": ctx.now, "doc": doc,
        })
        collaboration_store.update_member(conn, collaboration_id, ctx.account_id, status="ACTIVE",
                                          membership_id=membership_id, update_time=ctx.now)
        tag_store.put(conn, arn, params.get("tags") or {})
        summaries.refresh(conn, collaboration_id)
        return store.get(conn, ctx.region, ctx.account_id, membership_id)


@operation("GetMembership")
def get_membership(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        row = owned_membership(conn, ctx, params["membershipIdentifier"])
    return {"membership": membership_view(row)}


@operation("UpdateMembership")
def update_membership(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]
    with ctx.db.write(locks=locks.membership_keys(ctx, membership_id)) as conn:
        row = owned_membership(conn, ctx, membership_id)
        if row["status"] != "ACTIVE":
            raise errors.conflict(f"Membership {membership_id} is {row['status']} and can no longer be updated.",
                                  membership_id, "MEMBERSHIP", "INVALID_STATE")
        member_doc = row["member_doc"]
        payment.check_acceptance(member_doc["paymentConfiguration"], params.get("membershipPaymentConfiguration"),
                                 member_doc["abilities"], required=False)
        doc = dict(row["doc"])
        doc.update({key: params[key] for key in _DOC_FIELDS if key in params})
        store.update(conn, membership_id, doc=doc, update_time=ctx.now)
        summaries.refresh(conn, row["collaboration_id"])
        row = store.get(conn, ctx.region, ctx.account_id, membership_id)
    return {"membership": membership_view(row)}


@operation("DeleteMembership")
def delete_membership(ctx: RequestContext, params: dict) -> None:
    membership_id = params["membershipIdentifier"]
    with ctx.db.write(locks=locks.membership_keys(ctx, membership_id)) as conn:
        row = owned_membership(conn, ctx, membership_id)
        left = [what for check in SUBRESOURCE_CHECKS if (what := check(conn, membership_id))]
        if left:  # name everything that is left, so one answer says all there is to delete
            raise errors.conflict(f"Membership {membership_id} still has {' and '.join(left)}; delete them first.",
                                  membership_id, "MEMBERSHIP", "SUBRESOURCES_EXIST")
        if row["status"] == "ACTIVE":
            if row["collaboration_creator_account_id"] == ctx.account_id:
                raise errors.conflict(_CREATOR_CANNOT_LEAVE, membership_id, "MEMBERSHIP", "INVALID_STATE")
            collaboration_store.update_member(conn, row["collaboration_id"], ctx.account_id, status="LEFT",
                                              update_time=ctx.now)
        collaboration_store.update_member(conn, row["collaboration_id"], ctx.account_id, membership_id=None)
        store.delete(conn, membership_id)
        tag_store.remove(conn, row["arn"])
        summaries.refresh(conn, row["collaboration_id"])


@operation("ListMemberships")
def list_memberships(ctx: RequestContext, params: dict) -> dict:
    status = params.get("status")
    return list_page(ctx, params, "membershipSummaries", (status,),
                     lambda conn, after, limit: store.page_for_account(conn, ctx.region, ctx.account_id, status,
                                                                       after, limit))


def membership_view(row) -> dict:
    view = summaries.membership_summary(row)
    view.update(row["doc"])
    return view


def _already_joined(collaboration_id: str, status: str) -> ServiceError:
    if status == "ACTIVE":
        return errors.conflict(f"A membership already exists for this account in collaboration {collaboration_id}.",
                               collaboration_id, "COLLABORATION", "ALREADY_EXISTS")
    return errors.conflict(f"This account's member status in collaboration {collaboration_id} is {status}; it can "
                           "no longer join.", collaboration_id, "COLLABORATION", "INVALID_STATE")


def owns_membership(conn: sa.Connection, ctx: RequestContext, ids: tuple[str, ...]) -> bool:
    """Membership ARNs, for their owner only (the tag operations)."""
    return len(ids) == 1 and store.get(conn, ctx.region, ctx.account_id, ids[0]) is not None
