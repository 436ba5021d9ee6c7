"""Configured audience model associations: a member makes one of its Clean Rooms ML configured audience models
(lookalike models) available in the collaboration of one of its memberships.

This server keeps no Clean Rooms ML resources, so the model is known only by its ARN: it is checked in form (the
model's pattern, enforced by the generic validator) and in substance as far as that can be done without Clean Rooms
ML — it must be in the caller's own account and in the collaboration's region, under this server's partition — and
stored as given. Nothing can generate audiences from it here. The associations are membership-scoped like table
associations: only the membership's owner reads and changes them (anyone else's, like an unknown id, is
ResourceNotFoundException), creating and changing needs an ACTIVE membership (ConflictException for a create,
AccessDeniedException for an update, whose errors the model lists without a conflict), and reading, listing and deleting work
on any membership the caller still has. Every INVITED or ACTIVE member reads the associations of the collaboration's
ACTIVE memberships through the collaboration-wide operations. What each choice rests on is in docs/behaviour.md
under "Configured audience model associations".
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.encoded import encode
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import arns, errors, locks
from opencleanrooms.services.access import PARTICIPANT_STATUSES, member_view, owned_membership
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import audience_model_associations as store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import DuplicateError

RESOURCE_TYPE = "MEMBERSHIP"  # the model's ResourceType names no audience model association; it lives in one
ARN_KIND = "configuredaudiencemodelassociation"
MODEL_FIELD = "configuredAudienceModelArn"
_MODEL_RESOURCE = "configured-audience-model"


def membership_in_use(conn: sa.Connection, membership_id: str) -> str | None:
    """A membership that still has configured audience model associations cannot be deleted."""
    count = store.count_for_membership(conn, membership_id)
    return f"{count} configured audience model association{'' if count == 1 else 's'}" if count else None


def with_associations(resolve_membership):
    """Association ARNs (`membership/<membership id>/configuredaudiencemodelassociation/<id>`) share the `membership`
    resource type with membership ARNs; resolve both, for the association's owner only."""

    def resolve(conn: sa.Connection, ctx: RequestContext, ids: tuple[str, ...]) -> bool:
        if len(ids) == 3 and ids[1] == ARN_KIND:
            return store.get_owned(conn, ctx.region, ctx.account_id, ids[0], ids[2]) is not None
        return resolve_membership(conn, ctx, ids)

    return resolve


@operation("CreateConfiguredAudienceModelAssociation")
def create_association(ctx: RequestContext, params: dict) -> dict:
    membership_id, model_arn = params["membershipIdentifier"], params[MODEL_FIELD]
    check_new_resource_tags(params.get("tags") or {})
    _check_model_arn(ctx, model_arn)
    association_id = arns.new_id()
    arn = arns.membership_resource_arn(ctx.region, ctx.account_id, membership_id, ARN_KIND, association_id)
    doc = {"manageResourcePolicies": params["manageResourcePolicies"]}
    if "description" in params:
        doc["description"] = params["description"]
    try:
        with ctx.db.write(locks=[locks.membership(membership_id)]) as conn:  # not deleted meanwhile
            membership = _membership(conn, ctx, membership_id, active=True)
            collaboration_id = membership["collaboration_id"]
            if store.model_associated(conn, collaboration_id, model_arn):
                raise _already_associated(model_arn)
            store.insert(conn, {
                "id": association_id, "region": ctx.region, "account_id": ctx.account_id,
                "collaboration_id": collaboration_id, "membership_id": membership_id, "model_arn": model_arn,
                "name": params["configuredAudienceModelAssociationName"], "arn": arn, "create_time": ctx.now,
                "update_time": ctx.now, "doc": doc,
            })
            tag_store.put(conn, arn, params.get("tags") or {})
            row = _refresh_summaries(conn, membership_id, association_id)
    except DuplicateError:  # a concurrent create associated the same model (only where writers do not queue)
        raise _already_associated(model_arn) from None
    return {"configuredAudienceModelAssociation": association_view(row)}


@operation("GetConfiguredAudienceModelAssociation")
def get_association(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        row = _association(conn, ctx, params["membershipIdentifier"],
                           params["configuredAudienceModelAssociationIdentifier"])
    return {"configuredAudienceModelAssociation": association_view(row)}


@operation("UpdateConfiguredAudienceModelAssociation")
def update_association(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]
    association_id = params["configuredAudienceModelAssociationIdentifier"]
    with ctx.db.write() as conn:
        row = _association(conn, ctx, membership_id, association_id)
        if row["membership_status"] != "ACTIVE":  # the model declares no ConflictException for this operation
            raise errors.access_denied(f"Membership {membership_id} is {row['membership_status']}; configured "
                                       "audience model associations can only be changed in an ACTIVE membership.")
        changes = {"update_time": ctx.now}
        if "name" in params:
            changes["name"] = params["name"]
        if "description" in params:
            changes["doc"] = dict(row["doc"], description=params["description"])
        store.update(conn, association_id, **changes)
        row = _refresh_summaries(conn, membership_id, association_id)
    return {"configuredAudienceModelAssociation": association_view(row)}


@operation("DeleteConfiguredAudienceModelAssociation")
def delete_association(ctx: RequestContext, params: dict) -> None:
    with ctx.db.write() as conn:
        row = _association(conn, ctx, params["membershipIdentifier"],
                           params["configuredAudienceModelAssociationIdentifier"])
        store.delete(conn, row["id"])
        tag_store.remove(conn, row["arn"])


@operation("ListConfiguredAudienceModelAssociations")
def list_associations(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]

    def fetch(conn, after, limit):
        _membership(conn, ctx, membership_id)
        return store.page_for_membership(conn, membership_id, after, limit)

    return list_page(ctx, params, "configuredAudienceModelAssociationSummaries", (membership_id,), fetch)


@operation("GetCollaborationConfiguredAudienceModelAssociation")
def get_collaboration_association(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]
    association_id = params["configuredAudienceModelAssociationIdentifier"]
    with ctx.db.read() as conn:
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        row = store.get_in_collaboration(conn, collaboration_id, association_id)
    if row is None:
        raise errors.not_found(f"Configured audience model association {association_id} not found in collaboration "
                               f"{collaboration_id}.", association_id, "COLLABORATION")
    return {"collaborationConfiguredAudienceModelAssociation": collaboration_association_view(row)}


@operation("ListCollaborationConfiguredAudienceModelAssociations")
def list_collaboration_associations(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]

    def fetch(conn, after, limit):
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        return store.page_for_collaboration(conn, collaboration_id, after, limit)

    return list_page(ctx, params, "collaborationConfiguredAudienceModelAssociationSummaries", (collaboration_id,),
                     fetch)


# ------------------------------------------------------------------------------------------------ views


def association_view(row) -> dict:
    """The ConfiguredAudienceModelAssociation output shape."""
    view = _common(row)
    view.update(membershipId=row["membership_id"],
                membershipArn=arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
                manageResourcePolicies=row["doc"]["manageResourcePolicies"])
    return view


def collaboration_association_view(row) -> dict:
    """The CollaborationConfiguredAudienceModelAssociation output shape (what every member may see)."""
    return dict(_common(row), creatorAccountId=row["account_id"])


def association_summary(row) -> dict:
    """The ConfiguredAudienceModelAssociationSummary output shape."""
    return dict(_common(row), membershipId=row["membership_id"],
                membershipArn=arns.membership_arn(row["region"], row["account_id"], row["membership_id"]))


def collaboration_association_summary(row) -> dict:
    """The CollaborationConfiguredAudienceModelAssociationSummary output shape."""
    summary = dict(_common(row), creatorAccountId=row["account_id"])
    del summary["configuredAudienceModelArn"]  # not part of the collaboration-wide summary
    return summary


def _common(row) -> dict:
    view = {"id": row["id"], "arn": row["arn"], "configuredAudienceModelArn": row["model_arn"],
            "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
            "name": row["name"], "createTime": row["create_time"], "updateTime": row["update_time"]}
    if "description" in row["doc"]:
        view["description"] = row["doc"]["description"]
    return view


# ------------------------------------------------------------------------------------------------ checks


def _check_model_arn(ctx: RequestContext, model_arn: str) -> None:
    """The model's pattern is checked by the generic validator; what can be checked without Clean Rooms ML is that
    the model is the caller's own, in the region the collaboration is served in, under this server's partition."""
    partition, service, region, account, resource = (model_arn.split(":", 5) + [""] * 6)[1:6]
    problem = None
    if partition != arns.PARTITION:
        problem = f"is in partition {partition}; this server serves partition {arns.PARTITION}"
    elif region != ctx.region:
        problem = f"is in region {region}; it must be in the collaboration's region, {ctx.region}"
    elif account != ctx.account_id:
        problem = f"belongs to account {account}; only your own configured audience models can be associated"
    elif service != "cleanrooms-ml" or not resource.startswith(_MODEL_RESOURCE + "/"):
        problem = "is not a Clean Rooms ML configured audience model ARN"
    if problem:
        raise errors.validation(f"The configured audience model {model_arn} {problem}.",
                                reason="INVALID_CONFIGURATION", field=MODEL_FIELD, field_message=problem)


def _membership(conn: sa.Connection, ctx: RequestContext, membership_id: str, *, active: bool = False):
    return owned_membership(conn, ctx, membership_id,
                            active_for="configured audience model associations" if active else None)


def _association(conn: sa.Connection, ctx: RequestContext, membership_id: str, association_id: str):
    _membership(conn, ctx, membership_id)
    row = store.get(conn, membership_id, association_id)
    if row is None:
        raise errors.not_found(f"Configured audience model association {association_id} not found.", association_id,
                               RESOURCE_TYPE)
    return row


def _already_associated(model_arn: str) -> ServiceError:
    return errors.conflict(f"Configured audience model {model_arn} is already associated with this collaboration; "
                           "a configured audience model can be associated with a collaboration only once.",
                           model_arn, RESOURCE_TYPE, "ALREADY_EXISTS")


def _refresh_summaries(conn: sa.Connection, membership_id: str, association_id: str):
    """Re-encode the association's stored summaries; returns its current row."""
    row = store.get(conn, membership_id, association_id)
    store.set_summaries(conn, association_id, encode(association_summary(row)),
                        encode(collaboration_association_summary(row)))
    return row
