"""Collaborations and their members: create, read, update, delete, list, remove a member."""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.services import arns, errors, locks, payment, summaries
from opencleanrooms.services.access import PARTICIPANT_STATUSES, creator_view, member_view
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import collaborations as store
from opencleanrooms.storage import memberships as membership_store
from opencleanrooms.storage import tags as tag_store

# Collaboration fields kept as given (input name -> output name); everything else is derived.
_DOC_FIELDS = {
    "description": "description",
    "dataEncryptionMetadata": "dataEncryptionMetadata",
    "queryLogStatus": "queryLogStatus",
    "jobLogStatus": "jobLogStatus",
    "analyticsEngine": "analyticsEngine",
    "autoApprovedChangeRequestTypes": "autoApprovedChangeTypes",
    "allowedResultRegions": "allowedResultRegions",
    "isMetricsEnabled": "isMetricsEnabled",
}


@operation("CreateCollaboration")
def create_collaboration(ctx: RequestContext, params: dict) -> dict:
    members = params["members"]
    _check_member_accounts(ctx, members)
    check_new_resource_tags(params.get("tags") or {})
    ctx.quotas.check("members", len(members))
    participants = [
        payment.Participant(ctx.account_id, params["creatorMemberAbilities"],
                            params.get("creatorPaymentConfiguration"), "creatorPaymentConfiguration")
    ] + [
        payment.Participant(m["accountId"], m["memberAbilities"], m.get("paymentConfiguration"),
                            f"members.{i}.member.paymentConfiguration")
        for i, m in enumerate(members, 1)
    ]
    payments = payment.assign(participants)

    collaboration_id = arns.new_id()
    doc = {out: params[key] for key, out in _DOC_FIELDS.items() if key in params}
    doc.setdefault("isMetricsEnabled", False)
    row = {
        "id": collaboration_id,
        "region": ctx.region,
        "arn": arns.collaboration_arn(ctx.region, ctx.account_id, collaboration_id),
        "creator_account_id": ctx.account_id,
        "creator_display_name": params["creatorDisplayName"],
        "name": params["name"],
        "deleted": False,
        "create_time": ctx.now,
        "update_time": ctx.now,
        "doc": doc,
    }
    specs = [(ctx.account_id, params["creatorDisplayName"], params["creatorMemberAbilities"],
              params.get("creatorMLMemberAbilities"))]
    specs += [(m["accountId"], m["displayName"], m["memberAbilities"], m.get("mlMemberAbilities")) for m in members]
    member_rows = [
        {
            "collaboration_id": collaboration_id,
            "region": ctx.region,
            "account_id": account,
            "status": "INVITED",
            "listed": True,
            "display_name": display_name,
            "membership_id": None,
            "create_time": ctx.now,
            "update_time": ctx.now,
            "doc": _member_doc(abilities, ml_abilities, payments[account]),
        }
        for account, display_name, abilities, ml_abilities in specs
    ]
    with ctx.db.write(locks=[locks.account(ctx)]) as conn:  # count then insert, never two at once
        ctx.quotas.check("collaborations", store.count_created(conn, ctx.region, ctx.account_id) + 1)
        store.insert(conn, row, member_rows)
        tag_store.put(conn, row["arn"], params.get("tags") or {})
        summaries.refresh(conn, collaboration_id)
    return {"collaboration": collaboration_view(ctx, row, member_rows[0])}


@operation("GetCollaboration")
def get_collaboration(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        collaboration, member = member_view(conn, ctx, params["collaborationIdentifier"])
    return {"collaboration": collaboration_view(ctx, collaboration, member)}


@operation("UpdateCollaboration")
def update_collaboration(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]
    with ctx.db.write(locks=[locks.collaboration(collaboration_id)]) as conn:
        collaboration, member = creator_view(conn, ctx, collaboration_id)
        changes = {"update_time": ctx.now}
        doc = dict(collaboration["doc"])
        if "name" in params:
            changes["name"] = params["name"]
        for key in ("description", "analyticsEngine"):
            if key in params:
                doc[key] = params[key]
        changes["doc"] = doc
        store.update(conn, collaboration_id, **changes)
        summaries.refresh(conn, collaboration_id)
        collaboration = store.get(conn, ctx.region, collaboration_id)
    return {"collaboration": collaboration_view(ctx, collaboration, member)}


@operation("DeleteCollaboration")
def delete_collaboration(ctx: RequestContext, params: dict) -> None:
    collaboration_id = params["collaborationIdentifier"]
    with ctx.db.write(locks=[locks.collaboration(collaboration_id)]) as conn:
        collaboration, _ = creator_view(conn, ctx, collaboration_id)
        store.mark_deleted(conn, collaboration_id, ctx.now)
        membership_store.set_status_for_collaboration(conn, collaboration_id, "COLLABORATION_DELETED", ctx.now)
        tag_store.remove(conn, collaboration["arn"])
        summaries.refresh(conn, collaboration_id)


@operation("ListCollaborations")
def list_collaborations(ctx: RequestContext, params: dict) -> dict:
    status = params.get("memberStatus")
    return list_page(ctx, params, "collaborationList", (status,),
                     lambda conn, after, limit: store.page_for_account(conn, ctx.region, ctx.account_id, status,
                                                                       after, limit))


@operation("ListMembers")
def list_members(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]

    def fetch(conn, after, limit):
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        return store.page_members(conn, collaboration_id, after, limit)

    return list_page(ctx, params, "memberSummaries", (collaboration_id,), fetch,
                     lambda row: _member_summary(ctx, row))


@operation("DeleteMember")
def delete_member(ctx: RequestContext, params: dict) -> None:
    collaboration_id, account_id = params["collaborationIdentifier"], params["accountId"]
    with ctx.db.write(locks=[locks.collaboration(collaboration_id)]) as conn:
        creator_view(conn, ctx, collaboration_id)
        if account_id == ctx.account_id:
            raise errors.invalid_configuration("The collaboration creator cannot be removed from the collaboration; "
                                               "delete the collaboration instead.")
        target = store.get_member(conn, collaboration_id, account_id)
        if target is None:
            raise errors.not_found(f"Account {account_id} is not a member of collaboration {collaboration_id}.",
                                   account_id, "COLLABORATION")
        if target["status"] not in PARTICIPANT_STATUSES:
            raise errors.conflict(f"Member {account_id} is already {target['status']} and cannot be removed.",
                                  account_id, "COLLABORATION", "INVALID_STATE")
        store.update_member(conn, collaboration_id, account_id, status="REMOVED", update_time=ctx.now)
        if target["membership_id"]:
            membership_store.update(conn, target["membership_id"], status="REMOVED", update_time=ctx.now)
        summaries.refresh(conn, collaboration_id)


def collaboration_view(ctx: RequestContext, collaboration, member) -> dict:
    """The Collaboration output shape as the calling member sees it."""
    view = summaries.collaboration_summary(collaboration, member)
    view.update(collaboration["doc"])
    return view


def _member_summary(ctx: RequestContext, row) -> dict:
    doc = row["doc"]
    summary = {
        "accountId": row["account_id"],
        "status": row["status"],
        "displayName": row["display_name"],
        "abilities": doc["abilities"],
        "createTime": row["create_time"],
        "updateTime": row["update_time"],
        "paymentConfiguration": doc["paymentConfiguration"],
    }
    if "mlAbilities" in doc:
        summary["mlAbilities"] = doc["mlAbilities"]
    summary.update(summaries.membership_ref(ctx.region, row["account_id"], row["membership_id"]))
    return summary


def _member_doc(abilities: list, ml_abilities: dict | None, payment_config: dict) -> dict:
    doc = {"abilities": abilities, "paymentConfiguration": payment_config}
    if ml_abilities is not None:
        doc["mlAbilities"] = ml_abilities
    return doc


def _check_member_accounts(ctx: RequestContext, members: list[dict]) -> None:
    seen = {ctx.account_id}
    for i, member in enumerate(members, 1):
        account = member["accountId"]
        if account in seen:
            what = "the creator's own account" if account == ctx.account_id else "listed more than once"
            raise errors.validation(
                f"Member account {account} is {what}; each member must be a distinct account other than the creator.",
                field=f"members.{i}.member.accountId", field_message=f"Duplicate member account {account}",
            )
        seen.add(account)


def owns_collaboration(conn: sa.Connection, ctx: RequestContext, ids: tuple[str, ...]) -> bool:
    """Collaboration ARNs, for their creator only (the tag operations)."""
    return len(ids) == 1 and (c := store.get(conn, ctx.region, ids[0])) is not None and \
        c["creator_account_id"] == ctx.account_id
