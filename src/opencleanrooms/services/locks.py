"""The keys write transactions serialise on (see storage/database.py): one vocabulary for every service.

A write names, up front, every key whose invariants it reads and then relies on:
- `account(ctx)`: per-account quotas (collaborations, memberships, configured tables), counted then inserted;
- `collaboration(id)`: the collaboration's member rows, memberships' status and the list summaries that `refresh`
  rewrites, and its change requests;
- `membership(id)`: per-membership quotas and sub-resources (templates, associations) against DeleteMembership;
- `configured_table(id)`: its associations against DeleteConfiguredTable;
- `resource(arn)`: a resource's tags.

    with ctx.db.write(locks=[locks.collaboration(cid), locks.account(ctx)]) as conn: ...

Keys are taken before the transaction's first statement, so a key found only by reading (the collaboration of a
membership) is read first, outside the write (`membership_keys`); what it identifies never changes.
"""

from __future__ import annotations

from opencleanrooms.services.context import RequestContext
from opencleanrooms.storage import memberships as membership_store
from opencleanrooms.storage import server_state as server_state_store
from opencleanrooms.storage.database import LockKey


def account(ctx: RequestContext) -> LockKey:
    return ("account", ctx.region, ctx.account_id)


def collaboration(collaboration_id: str) -> LockKey:
    return ("collaboration", collaboration_id)


def membership(membership_id: str) -> LockKey:
    return ("membership", membership_id)


def configured_table(configured_table_id: str) -> LockKey:
    return ("configured-table", configured_table_id)


def resource(arn: str) -> LockKey:
    return ("resource", arn)


def server_state() -> LockKey:
    """Start-up writes every process makes (demo keys, the token key, summary backfill)."""
    return server_state_store.LOCK


def membership_keys(ctx: RequestContext, membership_id: str) -> list[LockKey]:
    """The membership's key and its collaboration's (when the caller owns such a membership; a missing one is
    reported by the write itself)."""
    with ctx.db.read() as conn:
        row = membership_store.get(conn, ctx.region, ctx.account_id, membership_id)
    keys = [membership(membership_id)]
    if row is not None:
        keys.append(collaboration(row["collaboration_id"]))
    return keys
