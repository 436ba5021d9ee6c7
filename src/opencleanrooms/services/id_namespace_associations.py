"""ID namespace associations: an AWS Entity Resolution ID namespace of the caller's, linked to the collaboration of
one of its memberships so that ID mapping tables can map its IDs.

Like configured table associations they are membership-scoped: only the membership's owner reads, changes or
deletes them through the membership (anyone else's membership, like an unknown id, is ResourceNotFoundException);
creating needs an ACTIVE membership. Every INVITED or ACTIVE member of the collaboration reads them
through the collaboration-wide variants; anyone else gets the collaboration's AccessDeniedException.

OpenCleanRooms has no Entity Resolution: the namespace ARN must be defined in the local catalog
(catalog/entity_resolution.py), which says its type and, for rule-based mapping, where its records are. What each
check rests on is in docs/behaviour.md under "ID namespace associations and ID mapping tables".
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.catalog import entity_resolution
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import arns, errors, locks
from opencleanrooms.services.access import PARTICIPANT_STATUSES, member_view, owned_membership
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import id_mappings as store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import DuplicateError

RESOURCE_TYPE = "MEMBERSHIP"  # the model's ResourceType has no association: it is a membership's sub-resource
COLLABORATION_RESOURCE_TYPE = "COLLABORATION"
KIND = "idnamespaceassociation"


def membership_in_use(conn: sa.Connection, membership_id: str) -> str | None:
    """A membership that still has ID namespace associations cannot be deleted."""
    count = store.count_associations(conn, membership_id)
    return f"{count} ID namespace association{'' if count == 1 else 's'}" if count else None


def owns_association(conn: sa.Connection, ctx: RequestContext, ids: tuple[str, ...]) -> bool:
    """`membership/<membership id>/idnamespaceassociation/<id>` ARNs, for their owner."""
    return (len(ids) == 3 and ids[1] == KIND
            and store.get_owned_association(conn, ctx.region, ctx.account_id, ids[0], ids[2]) is not None)


@operation("CreateIdNamespaceAssociation")
def create_association(ctx: RequestContext, params: dict) -> dict:
    membership_id, name = params["membershipIdentifier"], params["name"]
    config = params["inputReferenceConfig"]
    reference = config["inputReferenceArn"]
    check_new_resource_tags(params.get("tags") or {})
    _check_owned_reference(ctx, reference)
    association_id = arns.new_id()
    arn = arns.membership_resource_arn(ctx.region, ctx.account_id, membership_id, KIND, association_id)
    try:
        with ctx.db.write(locks=[locks.membership(membership_id)]) as conn:  # the quota count, then the insert
            membership = _membership(conn, ctx, membership_id, active=True)
            namespace = entity_resolution.get_namespace(conn, reference)
            if namespace is None:
                raise _unknown_namespace(reference)
            collaboration_id = membership["collaboration_id"]
            if store.association_for_reference(conn, collaboration_id, reference) is not None:
                raise _already_associated(reference, collaboration_id)
            ctx.quotas.check("id_namespace_associations", store.count_associations(conn, membership_id) + 1)
            doc = {"inputReferenceConfig": {"inputReferenceArn": reference,
                                            "manageResourcePolicies": config["manageResourcePolicies"]},
                   "inputReferenceProperties": {"idNamespaceType": namespace.type,
                                                "idMappingWorkflowsSupported": _workflows_supported(namespace)}}
            for key in ("description", "idMappingConfig"):
                if key in params:
                    doc[key] = params[key]
            store.insert_association(conn, {
                "id": association_id, "region": ctx.region, "account_id": ctx.account_id,
                "collaboration_id": collaboration_id, "membership_id": membership_id, "name": name, "arn": arn,
                "input_reference_arn": reference, "namespace_type": namespace.type,
                "create_time": ctx.now, "update_time": ctx.now, "doc": doc})
            tag_store.put(conn, arn, params.get("tags") or {})
            row = store.get_association(conn, membership_id, association_id)
    except DuplicateError:  # a concurrent create associated the same namespace (where writers do not queue)
        raise _already_associated(reference, None) from None
    return {"idNamespaceAssociation": association_view(row)}


@operation("GetIdNamespaceAssociation")
def get_association(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        row = _association(conn, ctx, params["membershipIdentifier"], params["idNamespaceAssociationIdentifier"])
    return {"idNamespaceAssociation": association_view(row)}


@operation("UpdateIdNamespaceAssociation")
def update_association(ctx: RequestContext, params: dict) -> dict:
    membership_id, association_id = params["membershipIdentifier"], params["idNamespaceAssociationIdentifier"]
    with ctx.db.write() as conn:  # any membership the caller still has: the operation declares no ConflictException
        row = _association(conn, ctx, membership_id, association_id)
        doc = dict(row["doc"])
        for key in ("description", "idMappingConfig"):
            if key in params:
                doc[key] = params[key]
        store.update_association(conn, association_id, name=params.get("name", row["name"]), doc=doc,
                                 update_time=ctx.now)
        row = store.get_association(conn, membership_id, association_id)
    return {"idNamespaceAssociation": association_view(row)}


@operation("DeleteIdNamespaceAssociation")
def delete_association(ctx: RequestContext, params: dict) -> None:
    membership_id, association_id = params["membershipIdentifier"], params["idNamespaceAssociationIdentifier"]
    with ctx.db.write(locks=[locks.membership(membership_id)]) as conn:
        row = _association(conn, ctx, membership_id, association_id)
        users = store.tables_using(conn, association_id)
        if users:
            raise errors.validation(  # the operation declares no ConflictException
                f"ID namespace association {association_id} is an input of ID mapping table(s) "
                f"{', '.join(sorted(users))}; they must be deleted first.", reason="INVALID_CONFIGURATION")
        store.delete_association(conn, association_id)
        tag_store.remove(conn, row["arn"])


@operation("ListIdNamespaceAssociations")
def list_associations(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]

    def fetch(conn, after, limit):
        _membership(conn, ctx, membership_id)
        return store.page_associations(conn, after, limit, membership_id=membership_id)

    return list_page(ctx, params, "idNamespaceAssociationSummaries", (membership_id,), fetch, association_summary)


@operation("GetCollaborationIdNamespaceAssociation")
def get_collaboration_association(ctx: RequestContext, params: dict) -> dict:
    collaboration_id, association_id = params["collaborationIdentifier"], params["idNamespaceAssociationIdentifier"]
    with ctx.db.read() as conn:
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        row = store.get_collaboration_association(conn, collaboration_id, association_id)
    if row is None:
        raise errors.not_found(f"ID namespace association {association_id} not found in collaboration "
                               f"{collaboration_id}.", association_id, COLLABORATION_RESOURCE_TYPE)
    return {"collaborationIdNamespaceAssociation": collaboration_association_view(row)}


@operation("ListCollaborationIdNamespaceAssociations")
def list_collaboration_associations(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]

    def fetch(conn, after, limit):
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        return store.page_associations(conn, after, limit, collaboration_id=collaboration_id)

    return list_page(ctx, params, "collaborationIdNamespaceAssociationSummaries", (collaboration_id,), fetch,
                     collaboration_association_summary)


# ------------------------------------------------------------------------------------------------ views


def _common(row) -> dict:
    view = {"id": row["id"], "arn": row["arn"], "collaborationId": row["collaboration_id"],
            "collaborationArn": row["collaboration_arn"], "name": row["name"]}
    if "description" in row["doc"]:
        view["description"] = row["doc"]["description"]
    view.update(createTime=row["create_time"], updateTime=row["update_time"],
                inputReferenceConfig=row["doc"]["inputReferenceConfig"])
    return view


def _membership_fields(row) -> dict:
    return {"membershipId": row["membership_id"],
            "membershipArn": arns.membership_arn(row["region"], row["account_id"], row["membership_id"])}


def association_view(row) -> dict:
    """The IdNamespaceAssociation output shape."""
    view = _common(row) | _membership_fields(row)
    view["inputReferenceProperties"] = row["doc"]["inputReferenceProperties"]
    if "idMappingConfig" in row["doc"]:
        view["idMappingConfig"] = row["doc"]["idMappingConfig"]
    return view


def association_summary(row) -> dict:
    """The IdNamespaceAssociationSummary output shape."""
    return _common(row) | _membership_fields(row) | {
        "inputReferenceProperties": {"idNamespaceType": row["namespace_type"]}}


def collaboration_association_view(row) -> dict:
    """The CollaborationIdNamespaceAssociation output shape."""
    view = _common(row) | {"creatorAccountId": row["account_id"],
                           "inputReferenceProperties": row["doc"]["inputReferenceProperties"]}
    if "idMappingConfig" in row["doc"]:
        view["idMappingConfig"] = row["doc"]["idMappingConfig"]
    return view


def collaboration_association_summary(row) -> dict:
    """The CollaborationIdNamespaceAssociationSummary output shape."""
    return _common(row) | {"creatorAccountId": row["account_id"],
                           "inputReferenceProperties": {"idNamespaceType": row["namespace_type"]}}


def allows_dimension(row) -> bool:
    """Whether the association lets its IDs be a dimension column of ID mapping tables (default FALSE)."""
    return bool((row["doc"].get("idMappingConfig") or {}).get("allowUseAsDimensionColumn"))


# ------------------------------------------------------------------------------------------------ checks


def _workflows_supported(namespace: entity_resolution.IdNamespace) -> list[dict]:
    """Entity Resolution's idMappingWorkflowProperties of the namespace: rule-based when it names its records."""
    return [{"idMappingType": "RULE_BASED"}] if not namespace.missing() else []


def _check_owned_reference(ctx: RequestContext, reference: str) -> None:
    """AWS: "Valid resource ARNs are from the ID namespaces that you own" (in the Region of the request)."""
    parts = reference.split(":")
    if parts[4] != ctx.account_id or parts[3] != ctx.region:
        raise errors.validation(
            f"{reference} is not an ID namespace of account {ctx.account_id} in {ctx.region}; only the caller's own "
            "ID namespaces can be associated.", reason="INVALID_CONFIGURATION",
            field="inputReferenceConfig.inputReferenceArn", field_message="Not an ID namespace the caller owns")


def _unknown_namespace(reference: str) -> ServiceError:
    return errors.validation(
        f"ID namespace {reference} does not exist. (OpenCleanRooms resolves Entity Resolution ID namespaces through "
        "its catalog: add an [[id_namespaces]] entry with this ARN and import it with `opencleanrooms catalog "
        "import`.)", reason="INVALID_CONFIGURATION", field="inputReferenceConfig.inputReferenceArn",
        field_message="Unknown ID namespace")


def _already_associated(reference: str, collaboration_id: str | None) -> ServiceError:
    where = f"collaboration {collaboration_id}" if collaboration_id else "this collaboration"
    return errors.conflict(f"ID namespace {reference} is already associated with {where}.", reference,
                           RESOURCE_TYPE, "ALREADY_EXISTS")


def _membership(conn: sa.Connection, ctx: RequestContext, membership_id: str, *, active: bool = False):
    return owned_membership(conn, ctx, membership_id, active_for="ID namespace associations" if active else None)


def _association(conn: sa.Connection, ctx: RequestContext, membership_id: str, association_id: str, *,
                 active: bool = False):
    _membership(conn, ctx, membership_id, active=active)
    row = store.get_association(conn, membership_id, association_id)
    if row is None:
        raise errors.not_found(f"ID namespace association {association_id} not found in membership "
                               f"{membership_id}.", association_id, RESOURCE_TYPE)
    return row
