"""What protected queries and protected jobs share: who may start one, the template parameter checks, the views,
and cancelling. Both families store a run the same way (a row with `doc`/`spec`, a view row per membership that
may see it) and AWS treats both the same way in these respects, so one piece of code serves both; what differs
(the SQL policy, the PySpark table checks, where results go) stays in protected_queries.py / protected_jobs.py."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import sqlalchemy as sa

from opencleanrooms.policy.parameters import value_problem
from opencleanrooms.services import arns, errors, schemas
from opencleanrooms.services.access import owned_membership
from opencleanrooms.services.analysis_rules import POLICY_MEMBERS
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.storage import collaborations as collaboration_store
from opencleanrooms.storage import memberships as membership_store

RESOURCE_TYPE = "MEMBERSHIP"  # the model's ResourceType has neither queries nor jobs; a run is a membership's
PRIVATE_FIELDS = frozenset({"receivers", "deliveries"})  # kept in a run's doc, not part of its output shape


@dataclass(frozen=True)
class Caller:
    """An ACTIVE member with the ability a run needs, its collaboration and the collaboration's members and
    memberships (both by account id)."""

    membership: Any
    collaboration: Any
    members: dict
    memberships: dict


def active_caller(conn: sa.Connection, ctx: RequestContext, membership_id: str, ability: str, what: str) -> Caller:
    """The caller's ACTIVE membership with `ability` (CAN_QUERY, CAN_RUN_JOB), or AccessDeniedException."""
    membership = owned_membership(conn, ctx, membership_id)
    collaboration = collaboration_store.get(conn, ctx.region, membership["collaboration_id"])
    if membership["status"] != "ACTIVE" or collaboration is None:
        raise errors.access_denied(f"Membership {membership_id} is {membership['status']}; only an ACTIVE "
                                   f"member can {what}.")
    members = {m["account_id"]: m for m in collaboration_store.members_of(conn, collaboration["id"])}
    memberships = {m["account_id"]: m for m in membership_store.joined_for_collaboration(conn, collaboration["id"])}
    if ability not in members[ctx.account_id]["doc"]["abilities"]:
        raise errors.access_denied(f"The member {ctx.account_id} does not have the {ability} ability in "
                                   f"collaboration {collaboration['id']}.")
    return Caller(membership, collaboration, members, memberships)


def template_parameters(template, given: dict, field: str) -> dict:
    """name -> (type, value): the request's values over the template's defaults, each checked against its
    declared type; `field` is the request path of the parameters, for the error."""
    declared = {p["name"]: p for p in template["doc"].get("analysisParameters") or []}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise errors.validation(f"The analysis template declares no parameter(s) {', '.join(unknown)}.", field=field)
    values = {}
    for name, parameter in declared.items():
        value = given.get(name, parameter.get("defaultValue"))
        if value is None or value == "":
            raise errors.validation(f"Parameter {name} has no default value; give it a value.", field=field)
        problem = value_problem(parameter["type"], value)
        if problem:
            raise errors.validation(f"Parameter {name} ({parameter['type']}): {problem}", field=f"{field}.{name}")
        values[name] = (parameter["type"], value)
    return values


def not_ready(row, facts) -> str | None:
    """Why a table association is not ready for direct analysis (its status reasons), or None if it is."""
    direct = schemas.status_details(row, facts)[0]
    if direct["status"] == "READY":
        return None
    return "; ".join(f"{r['code']}: {r['message']}" for r in direct.get("reasons", []))


def refused_receivers(row, receivers: list[str]) -> list[str]:
    """The receivers the association's collaboration analysis rule does not allow to receive results."""
    allowed = ((row["rule_policy"] or {}).get("v1", {}).get(POLICY_MEMBERS[row["rule_type"]], {})
               .get("allowedResultReceivers") or [])
    return [account for account in receivers if account not in allowed]


# ------------------------------------------------------------------------------------------------ views


def view(row, membership) -> dict:
    """The ProtectedQuery / ProtectedJob output shape."""
    shown = {"id": row["id"], "membershipId": row["membership_id"], "membershipArn": membership_arn(row, membership),
             "createTime": row["create_time"], "status": row["status"]}
    shown.update({k: v for k, v in row["doc"].items() if k not in PRIVATE_FIELDS})
    return shown


def summary(row, membership) -> dict:
    """The fields a ProtectedQuerySummary and a ProtectedJobSummary share, from a list row."""
    return {"id": row.id, "membershipId": row.membership_id,
            "membershipArn": membership_arn(row._mapping, membership), "createTime": row.create_time,
            "status": row.status, "receiverConfigurations": [{
                "analysisType": "DIRECT_ANALYSIS",
                "configurationDetails": {"directAnalysisConfigurationDetails": {
                    "receiverAccountIds": row.doc.get("receivers") or []}}}]}


def membership_arn(row, membership) -> str:
    if row["membership_id"] == membership["id"]:
        return membership["arn"]
    return arns.membership_arn(row["region"], row["account_id"], row["membership_id"])


def visible(store: ModuleType, conn: sa.Connection, membership_id: str, run_id: str, noun: str):
    """The run if the membership may see it; otherwise ResourceNotFoundException, whether it exists or not."""
    row = store.get_visible(conn, membership_id, run_id)
    if row is None:
        raise errors.not_found(f"Protected {noun} {run_id} not found.", run_id, RESOURCE_TYPE)
    return row


def cancel(ctx: RequestContext, store: ModuleType, membership_id: str, run_id: str, noun: str):
    """Cancel a run: one not started yet is CANCELLED at once; a running one becomes CANCELLING until its runner
    stops it; a finished one cannot be cancelled (ConflictException). Returns (row, caller's membership)."""
    with ctx.db.write() as conn:
        membership = owned_membership(conn, ctx, membership_id)
        row = visible(store, conn, membership_id, run_id, noun)
        if row["account_id"] != ctx.account_id:
            raise errors.access_denied(f"Only the member who started protected {noun} {run_id} can cancel it.")
        if row["status"] in store.FINAL_STATUSES:
            raise errors.conflict(f"Protected {noun} {run_id} has already finished with status {row['status']}; "
                                  "it cannot be cancelled.", run_id, RESOURCE_TYPE, "INVALID_STATE")
        # Conditional updates, in this order: a runner may claim the run between the read above and these
        # (PostgreSQL reads do not block writers), and then the second one applies.
        doc = dict(row["doc"], statistics={"totalDurationInMillis": millis(ctx.now - row["create_time"])})
        if not store.transition(conn, run_id, ["SUBMITTED"], "CANCELLED", ctx.now, doc=doc):
            store.transition(conn, run_id, ["STARTED"], "CANCELLING", ctx.now)
        row = store.get(conn, run_id)
    if ctx.wake_runner is not None:
        ctx.wake_runner()
    return row, membership


def millis(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def read(ctx: RequestContext, store: ModuleType, membership_id: str, run_id: str, noun: str):
    """Get: (the run, the caller's membership) if the caller's membership may see the run."""
    with ctx.db.read() as conn:
        membership = owned_membership(conn, ctx, membership_id)
        return visible(store, conn, membership_id, run_id, noun), membership


def list_runs(ctx: RequestContext, params: dict, store: ModuleType, key: str, render):
    """List: the runs the caller's membership sees, newest first, optionally of one status, rendered by
    `render(row, membership)` under `key` of the output."""
    membership_id, status = params["membershipIdentifier"], params.get("status")
    with ctx.db.read() as conn:
        membership = owned_membership(conn, ctx, membership_id)

    def fetch(conn, after, limit):
        return store.page_for_membership(conn, membership_id, status, after, limit)

    return list_page(ctx, params, key, (membership_id, status), fetch, render=lambda row: render(row, membership))
