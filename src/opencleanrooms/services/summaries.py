"""The summaries list calls return, built here and stored pre-encoded next to the rows they describe.

A CollaborationSummary depends on the collaboration and on the member's row; a MembershipSummary on the membership,
the collaboration and the member's row. Every write that changes any of these ends by calling `refresh` for the
collaboration, in the same transaction, so stored summaries are always current (names included).
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.encoded import encode
from opencleanrooms.services import arns
from opencleanrooms.storage import collaborations as collaboration_store
from opencleanrooms.storage import memberships as membership_store
from opencleanrooms.storage import server_state
from opencleanrooms.storage.database import SUMMARIES_BACKFILL, Database


def refresh(conn: sa.Connection, collaboration_id: str) -> None:
    """Re-encode the summaries of every member and membership of one collaboration."""
    collaboration = collaboration_store.get_any(conn, collaboration_id)
    for member in collaboration_store.members_of(conn, collaboration_id):
        collaboration_store.set_member_summary(conn, member["seq"],
                                               encode(collaboration_summary(collaboration, member)))
    for row in membership_store.joined_for_collaboration(conn, collaboration_id):
        membership_store.set_summary(conn, row["id"], encode(membership_summary(row)))


def backfill(db: Database) -> int:
    """Fill summaries missing from rows written before they existed (once, after the migration that added them,
    so that an ordinary start costs nothing); returns the collaborations refreshed."""
    with db.write(locks=[server_state.LOCK]) as conn:
        if not server_state.exists(conn, SUMMARIES_BACKFILL):
            return 0
        ids = set(collaboration_store.ids_missing_summaries(conn))
        ids.update(membership_store.collaboration_ids_missing_summaries(conn))
        for collaboration_id in ids:
            refresh(conn, collaboration_id)
        server_state.remove(conn, SUMMARIES_BACKFILL)
    return len(ids)


def collaboration_summary(collaboration, member) -> dict:
    """CollaborationSummary as `member` sees it."""
    summary = {
        "id": collaboration["id"],
        "arn": collaboration["arn"],
        "name": collaboration["name"],
        "creatorAccountId": collaboration["creator_account_id"],
        "creatorDisplayName": collaboration["creator_display_name"],
        "createTime": collaboration["create_time"],
        "updateTime": collaboration["update_time"],
        "memberStatus": member["status"],
    }
    summary.update(membership_ref(collaboration["region"], member["account_id"], member["membership_id"]))
    if "analyticsEngine" in collaboration["doc"]:
        summary["analyticsEngine"] = collaboration["doc"]["analyticsEngine"]
    return summary


def membership_summary(row) -> dict:
    """MembershipSummary from a membership joined with its collaboration and member row."""
    member_doc = row["member_doc"]
    summary = {
        "id": row["id"],
        "arn": row["arn"],
        "collaborationArn": row["collaboration_arn"],
        "collaborationId": row["collaboration_id"],
        "collaborationCreatorAccountId": row["collaboration_creator_account_id"],
        "collaborationCreatorDisplayName": row["collaboration_creator_display_name"],
        "collaborationName": row["collaboration_name"],
        "createTime": row["create_time"],
        "updateTime": row["update_time"],
        "status": row["status"],
        "memberAbilities": member_doc["abilities"],
        "paymentConfiguration": member_doc["paymentConfiguration"],
    }
    if "mlAbilities" in member_doc:
        summary["mlMemberAbilities"] = member_doc["mlAbilities"]
    return summary


def membership_ref(region: str, account_id: str, membership_id: str | None) -> dict:
    if not membership_id:
        return {}
    return {"membershipId": membership_id, "membershipArn": arns.membership_arn(region, account_id, membership_id)}
