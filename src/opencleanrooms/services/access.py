"""Who may see and change what across accounts.

A collaboration is visible only to accounts listed as its members; to everyone else it does not exist, and AWS
answers AccessDeniedException whether it exists or not, so that no caller learns about collaborations it is not in.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.errors import ServiceError
from opencleanrooms.services import errors
from opencleanrooms.services.errors import access_denied
from opencleanrooms.services.context import RequestContext
from opencleanrooms.storage import collaborations as collaboration_store
from opencleanrooms.storage import memberships as membership_store

READ_STATUSES = frozenset({"INVITED", "ACTIVE", "LEFT", "REMOVED"})
PARTICIPANT_STATUSES = frozenset({"INVITED", "ACTIVE"})


def collaboration_denied(collaboration_id: str) -> ServiceError:
    return access_denied(f"Unable to access collaboration {collaboration_id}: "
                         "it does not exist or the caller is not a member of it.")


def member_view(conn: sa.Connection, ctx: RequestContext, collaboration_id: str,
                statuses: frozenset[str] = READ_STATUSES):
    """The live collaboration and the caller's member row, if the caller's status is one of `statuses`."""
    collaboration = collaboration_store.get(conn, ctx.region, collaboration_id)
    if collaboration is not None:
        member = collaboration_store.get_member(conn, collaboration_id, ctx.account_id)
        if member is not None and member["status"] in statuses:
            return collaboration, member
    raise collaboration_denied(collaboration_id)


def creator_view(conn: sa.Connection, ctx: RequestContext, collaboration_id: str):
    """The live collaboration and the creator's member row, for calls only the creator may make."""
    collaboration, member = member_view(conn, ctx, collaboration_id)
    if collaboration["creator_account_id"] != ctx.account_id:
        raise access_denied(f"Only the creator of collaboration {collaboration_id} can perform {ctx.operation}.")
    return collaboration, member


def owned_membership(conn: sa.Connection, ctx: RequestContext, membership_id: str, *, active_for: str | None = None):
    """The caller's own membership; anyone else's, like a missing one, is ResourceNotFoundException.

    With `active_for` (what the call creates or changes, e.g. "analysis templates") it must also be ACTIVE.
    """
    row = membership_store.get(conn, ctx.region, ctx.account_id, membership_id)
    if row is None:
        raise errors.not_found(f"Membership {membership_id} not found.", membership_id, "MEMBERSHIP")
    if active_for and row["status"] != "ACTIVE":
        raise errors.conflict(f"Membership {membership_id} is {row['status']}; {active_for} can only be created or "
                              "changed in an ACTIVE membership.", membership_id, "MEMBERSHIP", "INVALID_STATE")
    return row
