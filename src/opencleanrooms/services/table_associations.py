"""Configured table associations and their collaboration analysis rules.

An association links one of the caller's configured tables to the collaboration of one of the caller's memberships,
under a name that is the relation name in that collaboration (see services/schemas.py). Associations are
membership-scoped: only the membership's owner sees them; anyone else's membership, like an unknown id, is
ResourceNotFoundException. Creating and changing needs an ACTIVE membership; reading, listing and deleting work on
any membership the caller still has, so that a removed member (or one whose collaboration was deleted) can clean up
before deleting its membership.

The collaboration analysis rule (ConfiguredTableAssociationAnalysisRule) adds this collaboration's controls to the
configured table's own rule: who may receive results, and which additional analyses may use the output. Its type
must be the type of the configured table's rule. What each check rests on is listed in docs/behaviour.md under
"Configured table associations and schemas".
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from opencleanrooms.encoded import encode
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import analysis_rules, arns, configured_tables, errors, locks
from opencleanrooms.services.access import PARTICIPANT_STATUSES, owned_membership
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import collaborations as collaboration_store
from opencleanrooms.storage import configured_tables as table_store
from opencleanrooms.storage import table_associations as store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import DuplicateError

RESOURCE_TYPE = "CONFIGURED_TABLE_ASSOCIATION"
RECEIVE_RESULTS = "CAN_RECEIVE_RESULTS"
_DOC_FIELDS = ("description", "roleArn")
_POLICY_PATH = "analysisRulePolicy.v1"
# The membership segment of an allowed additional analysis ARN (a configured audience model association or a
# Clean Rooms ML configured model algorithm association): `*` or a membership id.
_ADDITIONAL_ANALYSIS_MEMBERSHIP = re.compile(r":membership/([^/]+)/")
def _plural(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


# Filled by services.wiring: other families' names in a collaboration, (conn, collaboration_id, name) -> bool, and
# what follows an association's deletion, (conn, collaboration_id, association_id, name, now) -> None.
NAME_CHECKS: list = []
DELETE_HOOKS: list = []


def relation_name_taken(conn: sa.Connection, collaboration_id: str, name: str) -> bool:
    """Whether a relation of the collaboration (an association, or another family's: NAME_CHECKS) has the name,
    compared case-insensitively: every kind of relation asks this before taking one."""
    return store.name_taken(conn, collaboration_id, name.lower()) or any(
        taken(conn, collaboration_id, name) for taken in NAME_CHECKS)


def membership_in_use(conn: sa.Connection, membership_id: str) -> str | None:
    """A membership that still has associations cannot be deleted."""
    count = store.count_for_membership(conn, membership_id)
    return _plural(count, "configured table association") if count else None


def table_in_use(conn: sa.Connection, configured_table_id: str) -> str | None:
    """A configured table that is still associated cannot be deleted."""
    count = store.count_for_configured_table(conn, configured_table_id)
    return f"it is associated with {_plural(count, 'collaboration')}" if count else None


def table_rule_in_use(conn: sa.Connection, configured_table_id: str, rule_type: str) -> str | None:
    """Nor can its analysis rule while an association of the table has a collaboration rule of that type."""
    count = store.count_rules_for_configured_table(conn, configured_table_id, rule_type)
    if not count:
        return None
    return (f"{_plural(count, 'configured table association')} of the table {'has' if count == 1 else 'have'} a "
            f"{rule_type} collaboration analysis rule; delete {'it' if count == 1 else 'them'} first")


def owns_association(conn: sa.Connection, ctx: RequestContext, ids: tuple[str, ...]) -> bool:
    """Association ARNs as the outputs give them: configuredtableassociation/<membership id>/<association id>."""
    return len(ids) == 2 and store.get_owned(conn, ctx.region, ctx.account_id, *ids) is not None




@operation("CreateConfiguredTableAssociation")
def create_association(ctx: RequestContext, params: dict) -> dict:
    membership_id, configured_table_id = params["membershipIdentifier"], params["configuredTableIdentifier"]
    name = params["name"].lower()
    check_new_resource_tags(params.get("tags") or {})
    association_id = arns.new_id()
    arn = arns.configured_table_association_arn(ctx.region, ctx.account_id, membership_id, association_id)
    try:
        # neither is deleted meanwhile; the collaboration's key serialises the name check with other relations'
        # (ID mapping tables take it too)
        with ctx.db.write(locks=[*locks.membership_keys(ctx, membership_id),
                                 locks.configured_table(configured_table_id)]) as conn:
            membership = _membership(conn, ctx, membership_id, active=True)
            collaboration_id = membership["collaboration_id"]
            table = table_store.get(conn, ctx.region, ctx.account_id, configured_table_id)
            if table is None:
                raise errors.not_found(f"Configured table {configured_table_id} not found.", configured_table_id,
                                       configured_tables.RESOURCE_TYPE)
            if relation_name_taken(conn, collaboration_id, name):
                raise _name_taken(name, collaboration_id)
            if store.table_associated(conn, collaboration_id, configured_table_id):
                raise errors.conflict(
                    f"Configured table {configured_table_id} is already associated with collaboration "
                    f"{collaboration_id}; a configured table can be associated with a collaboration only once.",
                    configured_table_id, configured_tables.RESOURCE_TYPE, "ALREADY_EXISTS")
            store.insert(conn, {
                "id": association_id, "region": ctx.region, "account_id": ctx.account_id,
                "collaboration_id": collaboration_id, "membership_id": membership_id,
                "configured_table_id": configured_table_id, "name": name, "arn": arn,
                "create_time": ctx.now, "update_time": ctx.now,
                "doc": {key: params[key] for key in _DOC_FIELDS if key in params},
            })
            tag_store.put(conn, arn, params.get("tags") or {})
            row = _refresh_summary(conn, membership_id, association_id)
    except DuplicateError:  # a concurrent create took the name or the table (only where writers do not queue)
        raise errors.conflict(f"Another configured table association with the name {name} or for configured "
                              f"table {configured_table_id} was just created in this collaboration.",
                              name, RESOURCE_TYPE, "ALREADY_EXISTS") from None
    return {"configuredTableAssociation": association_view(row)}


@operation("GetConfiguredTableAssociation")
def get_association(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        _, row = _association(conn, ctx, params["membershipIdentifier"],
                              params["configuredTableAssociationIdentifier"])
    return {"configuredTableAssociation": association_view(row)}


@operation("UpdateConfiguredTableAssociation")
def update_association(ctx: RequestContext, params: dict) -> dict:
    membership_id, association_id = params["membershipIdentifier"], params["configuredTableAssociationIdentifier"]
    with ctx.db.write() as conn:
        _, row = _association(conn, ctx, membership_id, association_id, active=True)
        doc = dict(row["doc"])
        doc.update({key: params[key] for key in _DOC_FIELDS if key in params})
        store.update(conn, association_id, doc=doc, update_time=ctx.now)
        row = _refresh_summary(conn, membership_id, association_id)
    return {"configuredTableAssociation": association_view(row)}


@operation("DeleteConfiguredTableAssociation")
def delete_association(ctx: RequestContext, params: dict) -> None:
    membership_id, association_id = params["membershipIdentifier"], params["configuredTableAssociationIdentifier"]
    with ctx.db.write() as conn:
        _, row = _association(conn, ctx, membership_id, association_id)
        store.delete(conn, association_id)
        tag_store.remove(conn, row["arn"])
        for hook in DELETE_HOOKS:
            hook(conn, row["collaboration_id"], association_id, row["name"], ctx.now)


@operation("ListConfiguredTableAssociations")
def list_associations(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]

    def fetch(conn, after, limit):
        _membership(conn, ctx, membership_id)
        return store.page_for_membership(conn, membership_id, after, limit)

    return list_page(ctx, params, "configuredTableAssociationSummaries", (membership_id,), fetch)


# ------------------------------------------------------------------------------------------------ analysis rules


@operation("CreateConfiguredTableAssociationAnalysisRule")
def create_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    membership_id, association_id = params["membershipIdentifier"], params["configuredTableAssociationIdentifier"]
    rule_type, policy = params["analysisRuleType"], params["analysisRulePolicy"]
    analysis_rules.policy_body(rule_type, policy)  # the request alone is wrong: say so before looking anything up
    try:
        with ctx.db.write() as conn:
            membership, row = _association(conn, ctx, membership_id, association_id, active=True)
            if row["rule_type"] is not None:
                raise _rule_exists(association_id, row["rule_type"])
            _check_rule(conn, membership, row, rule_type, policy)
            store.insert_rule(conn, {"configured_table_association_id": association_id, "type": rule_type,
                                     "create_time": ctx.now, "update_time": ctx.now, "policy": policy})
            _refresh_summary(conn, membership_id, association_id)
            rule = store.get_rule(conn, association_id)
    except DuplicateError:  # a concurrent create won (only possible where writers do not queue)
        raise _rule_exists(association_id, None) from None
    return {"analysisRule": analysis_rule_view(row, rule)}


@operation("GetConfiguredTableAssociationAnalysisRule")
def get_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        _, row, rule = _rule(conn, ctx, params)
    return {"analysisRule": analysis_rule_view(row, rule)}


@operation("UpdateConfiguredTableAssociationAnalysisRule")
def update_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    rule_type, policy = params["analysisRuleType"], params["analysisRulePolicy"]
    analysis_rules.policy_body(rule_type, policy)
    association_id = params["configuredTableAssociationIdentifier"]
    with ctx.db.write() as conn:
        membership, row, _ = _rule(conn, ctx, params, active=True)
        _check_rule(conn, membership, row, rule_type, policy)
        store.update_rule(conn, association_id, policy=policy, update_time=ctx.now)
        rule = store.get_rule(conn, association_id)
    return {"analysisRule": analysis_rule_view(row, rule)}


@operation("DeleteConfiguredTableAssociationAnalysisRule")
def delete_analysis_rule(ctx: RequestContext, params: dict) -> None:
    with ctx.db.write() as conn:
        _, row, _ = _rule(conn, ctx, params)
        store.delete_rule(conn, row["id"])
        _refresh_summary(conn, row["membership_id"], row["id"])


# ------------------------------------------------------------------------------------------------ views


def association_view(row) -> dict:
    """The ConfiguredTableAssociation output shape."""
    view = {
        "arn": row["arn"],
        "id": row["id"],
        "configuredTableId": row["configured_table_id"],
        "configuredTableArn": arns.configured_table_arn(row["region"], row["account_id"], row["configured_table_id"]),
        "membershipId": row["membership_id"],
        "membershipArn": arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
        "roleArn": row["doc"]["roleArn"],
        "name": row["name"],
    }
    if "description" in row["doc"]:
        view["description"] = row["doc"]["description"]
    view.update(analysisRuleTypes=_rule_types(row), createTime=row["create_time"], updateTime=row["update_time"])
    return view


def association_summary(row) -> dict:
    """The ConfiguredTableAssociationSummary output shape."""
    return {
        "configuredTableId": row["configured_table_id"],
        "membershipId": row["membership_id"],
        "membershipArn": arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
        "name": row["name"],
        "createTime": row["create_time"],
        "updateTime": row["update_time"],
        "id": row["id"],
        "arn": row["arn"],
        "analysisRuleTypes": _rule_types(row),
    }


def analysis_rule_view(association, rule) -> dict:
    """The ConfiguredTableAssociationAnalysisRule output shape."""
    return {"membershipIdentifier": association["membership_id"],
            "configuredTableAssociationId": association["id"],
            "configuredTableAssociationArn": association["arn"],
            "policy": rule["policy"], "type": rule["type"],
            "createTime": rule["create_time"], "updateTime": rule["update_time"]}


def _rule_types(row) -> list[str]:
    return [row["rule_type"]] if row["rule_type"] else []


# ------------------------------------------------------------------------------------------------ checks


def _membership(conn: sa.Connection, ctx: RequestContext, membership_id: str, *, active: bool = False):
    return owned_membership(conn, ctx, membership_id, active_for="configured table associations" if active else None)


def _association(conn: sa.Connection, ctx: RequestContext, membership_id: str, association_id: str, *,
                 active: bool = False):
    membership = _membership(conn, ctx, membership_id, active=active)
    row = store.get(conn, membership_id, association_id)
    if row is None:
        raise errors.not_found(f"Configured table association {association_id} not found.", association_id,
                               RESOURCE_TYPE)
    return membership, row


def _rule(conn: sa.Connection, ctx: RequestContext, params: dict, *, active: bool = False):
    association_id, rule_type = params["configuredTableAssociationIdentifier"], params["analysisRuleType"]
    membership, row = _association(conn, ctx, params["membershipIdentifier"], association_id, active=active)
    rule = store.get_rule(conn, association_id)
    if rule is None or rule["type"] != rule_type:
        raise errors.not_found(f"Configured table association {association_id} has no {rule_type} analysis rule.",
                               association_id, RESOURCE_TYPE)
    return membership, row, rule


def _rule_exists(association_id: str, existing: str | None) -> ServiceError:
    which = f" ({existing})" if existing else ""
    return errors.conflict(f"Configured table association {association_id} already has an analysis rule{which}; "
                           "a configured table association can have only one.", association_id, RESOURCE_TYPE,
                           "ALREADY_EXISTS")


def _name_taken(name: str, collaboration_id: str) -> ServiceError:
    return errors.conflict(f"A configured table association named {name} already exists in collaboration "
                           f"{collaboration_id}; names are unique within a collaboration.", name, RESOURCE_TYPE,
                           "ALREADY_EXISTS")


def _check_rule(conn: sa.Connection, membership, association, rule_type: str, policy: dict) -> None:
    """A collaboration analysis rule must have the type of the configured table's rule, name as result receivers
    only members who can receive results, and allow additional analyses only where the type supports them and only
    by resources of this collaboration."""
    body = analysis_rules.policy_body(rule_type, policy)
    path = f"{_POLICY_PATH}.{analysis_rules.POLICY_MEMBERS[rule_type]}"
    table_rule = table_store.get_rule(conn, association["configured_table_id"])
    if table_rule is None or table_rule["type"] != rule_type:
        has = f"has a {table_rule['type']} analysis rule" if table_rule else "has no analysis rule"
        raise errors.validation(
            f"The collaboration analysis rule must have the type of the configured table's analysis rule: "
            f"configured table {association['configured_table_id']} {has}, not {rule_type}.",
            reason="INVALID_CONFIGURATION", field="analysisRuleType",
            field_message=f"The configured table {has}")
    receivers = body.get("allowedResultReceivers") or []
    additional = body.get("allowedAdditionalAnalyses") or []
    analysis_rules.check_no_duplicates(receivers, f"{path}.allowedResultReceivers")
    analysis_rules.check_no_duplicates(additional, f"{path}.allowedAdditionalAnalyses")
    members = {m["account_id"]: m for m in collaboration_store.members_of(conn, membership["collaboration_id"])}
    refused = [account for account in receivers if not can_receive_results(members.get(account))]
    if refused:
        raise errors.validation(
            f"allowedResultReceivers must be members of the collaboration who can receive results; these are not: "
            f"{', '.join(refused)}.", reason="INVALID_CONFIGURATION", field=f"{path}.allowedResultReceivers",
            field_message=f"Not members who can receive results: {', '.join(refused)}")
    if additional and rule_type == "AGGREGATION":
        raise errors.validation(
            "allowedAdditionalAnalyses is supported only for the LIST and CUSTOM analysis rules.",
            reason="INVALID_CONFIGURATION", field=f"{path}.allowedAdditionalAnalyses",
            field_message="Not supported for AGGREGATION rules")
    memberships_here = {m["membership_id"] for m in members.values() if m["membership_id"]}
    foreign = [arn for arn in additional if (match := _ADDITIONAL_ANALYSIS_MEMBERSHIP.search(arn)) is None
               or (match[1] != "*" and match[1] not in memberships_here)]
    if foreign:
        raise errors.validation(
            f"allowedAdditionalAnalyses may only name resources of this collaboration's memberships (or `*`): "
            f"{', '.join(foreign)}.", reason="INVALID_CONFIGURATION", field=f"{path}.allowedAdditionalAnalyses",
            field_message="Not resources of this collaboration")


def can_receive_results(member) -> bool:
    """A member row (or None) of an INVITED or ACTIVE member with CAN_RECEIVE_RESULTS."""
    return (member is not None and member["status"] in PARTICIPANT_STATUSES
            and RECEIVE_RESULTS in member["doc"]["abilities"])


def _refresh_summary(conn: sa.Connection, membership_id: str, association_id: str):
    """Re-encode the association's stored summary; returns its current row."""
    row = store.get(conn, membership_id, association_id)
    store.set_summary(conn, association_id, encode(association_summary(row)))
    return row
