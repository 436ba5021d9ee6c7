"""Privacy budget templates and privacy budgets: the differential privacy budget of a collaboration and the access
budgets of its table associations, what is left of them, and the spend that protected queries make.

A template belongs to the membership that created it (the owner updates and deletes it through that membership),
but sets a budget of the whole collaboration, so every ACTIVE member reads the collaboration's templates and
budgets through its own membership (the model: "retrieved from the collaboration that this membership belongs
to"), and every INVITED or ACTIVE member through the collaboration calls. A membership that is no longer ACTIVE
sees only what it created. The differential privacy template is created by a member that has associated a table
whose custom rule uses differential privacy (AWS: the data owner sets the policy); an access budget by the member
whose association it limits. What each check rests on, and the arithmetic, are in docs/differential-privacy.md.

`spend` is what the protected query service calls inside its write transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import sqlalchemy as sa

from opencleanrooms.encoded import encode
from opencleanrooms.errors import ServiceError
from opencleanrooms.privacy import budgets, costs
from opencleanrooms.privacy.costs import AGGREGATION_TYPES, BudgetExhausted
from opencleanrooms.services import arns, errors
from opencleanrooms.services.access import PARTICIPANT_STATUSES, member_view, owned_membership
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import privacy_budgets as store
from opencleanrooms.storage import table_associations as association_store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import DuplicateError
from opencleanrooms.storage.privacy_budgets import ACCESS_BUDGET, DIFFERENTIAL_PRIVACY

__all__ = ["BudgetExhausted", "Spent", "differential_privacy_parameters", "spend"]

RESOURCE_TYPE = "MEMBERSHIP"  # the model's ResourceType has no template: it is a membership's sub-resource
COLLABORATION_RESOURCE_TYPE = "COLLABORATION"
UNION_MEMBER = {DIFFERENTIAL_PRIVACY: "differentialPrivacy", ACCESS_BUDGET: "accessBudget"}
NO_REFRESH = "NONE"
LIFETIME = "LIFETIME"
# Both ARN forms name an association: the model's BudgetedResourceArn (`membership/<m>/configuredtableassociation/<a>`)
# and the association's own ARN (`configuredtableassociation/<m>/<a>`).
_ASSOCIATION_ARN = re.compile(
    r"^arn:aws:cleanrooms:(?P<region>[\w-]+):(?P<account>\d{12}):(?:membership/(?P<m1>[\w-]+)/"
    r"configuredtableassociation/(?P<a1>[\w-]+)|configuredtableassociation/(?P<m2>[\w-]+)/(?P<a2>[\w-]+))$")


def membership_in_use(conn: sa.Connection, membership_id: str) -> str | None:
    """A membership that still has privacy budget templates cannot be deleted."""
    count = store.count_for_membership(conn, membership_id)
    return f"{count} privacy budget template{'' if count == 1 else 's'}" if count else None


def owns_template(conn: sa.Connection, ctx: RequestContext, ids: tuple[str, ...]) -> bool:
    """Privacy budget template ARNs (`privacybudgettemplate/<id>`), for their owner only."""
    return len(ids) == 1 and store.get_owned(conn, ctx.region, ctx.account_id, ids[0]) is not None


# ------------------------------------------------------------------------------------------------ templates


@operation("CreatePrivacyBudgetTemplate")
def create_template(ctx: RequestContext, params: dict) -> dict:
    membership_id, budget_type = params["membershipIdentifier"], params["privacyBudgetType"]
    check_new_resource_tags(params.get("tags") or {})
    parameters = _union_member(params["parameters"], budget_type, "parameters")
    auto_refresh = params.get("autoRefresh") or NO_REFRESH
    if budget_type == ACCESS_BUDGET:
        if auto_refresh != NO_REFRESH:
            raise errors.validation("An ACCESS_BUDGET template refreshes per budget parameter "
                                    "(parameters.accessBudget.budgetParameters[].autoRefresh); its autoRefresh must "
                                    "be NONE or absent.", reason="INVALID_CONFIGURATION", field="autoRefresh")
        _check_budget_parameters(parameters["budgetParameters"], "parameters.accessBudget.budgetParameters")
    template_id, collaboration_id = arns.new_id(), None
    arn = f"arn:{arns.PARTITION}:cleanrooms:{ctx.region}:{ctx.account_id}:privacybudgettemplate/{template_id}"
    try:
        with ctx.db.write() as conn:
            membership = owned_membership(conn, ctx, membership_id, active_for="privacy budget templates")
            collaboration_id = membership["collaboration_id"]
            if budget_type == DIFFERENTIAL_PRIVACY:
                _check_private_tables(conn, membership_id)
                resource_key, doc = "", {UNION_MEMBER[budget_type]: dict(parameters)}
            else:
                resource_key = _budgeted_association(conn, ctx, membership_id, parameters["resourceArn"])
                doc = {UNION_MEMBER[budget_type]: {"budgetParameters": parameters["budgetParameters"],
                                                   "resourceArn": parameters["resourceArn"]}}
            taken = store.existing(conn, collaboration_id, budget_type, resource_key)
            if taken:
                raise _budget_taken(budget_type, collaboration_id, resource_key, taken)
            store.insert(conn, {
                "id": template_id, "region": ctx.region, "account_id": ctx.account_id,
                "collaboration_id": collaboration_id, "membership_id": membership_id, "arn": arn,
                "budget_type": budget_type, "resource_key": resource_key, "auto_refresh": auto_refresh, "doc": doc,
                "create_time": ctx.now, "update_time": ctx.now, "budget_id": arns.new_id(),
                "budget_set_at": ctx.now, "budget_update_time": ctx.now, "ledger": {},
            })
            tag_store.put(conn, arn, params.get("tags") or {})
            row = _refresh_summaries(conn, collaboration_id, template_id)
    except DuplicateError:  # a concurrent create set the budget first (only where writers do not queue)
        raise _budget_taken(budget_type, collaboration_id or "", "", None) from None
    return {"privacyBudgetTemplate": template_view(row)}


@operation("GetPrivacyBudgetTemplate")
def get_template(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        _, row = _template(conn, ctx, params["membershipIdentifier"], params["privacyBudgetTemplateIdentifier"])
    return {"privacyBudgetTemplate": template_view(row)}


@operation("UpdatePrivacyBudgetTemplate")
def update_template(ctx: RequestContext, params: dict) -> dict:
    membership_id, template_id = params["membershipIdentifier"], params["privacyBudgetTemplateIdentifier"]
    budget_type = params["privacyBudgetType"]
    given = params.get("parameters")
    changes = _union_member(given, budget_type, "parameters") if given else None
    if changes is not None and budget_type == ACCESS_BUDGET:
        _check_budget_parameters(changes["budgetParameters"], "parameters.accessBudget.budgetParameters")
    with ctx.db.write() as conn:
        membership, row = _template(conn, ctx, membership_id, template_id, owner_only=True)
        if membership["status"] != "ACTIVE":
            owned_membership(conn, ctx, membership_id, active_for="privacy budget templates")
        if row["budget_type"] != budget_type:
            raise errors.validation(f"Privacy budget template {template_id} is of type {row['budget_type']}, not "
                                    f"{budget_type}; the type cannot be changed.", field="privacyBudgetType")
        values: dict = {"update_time": ctx.now}
        if changes:
            member = UNION_MEMBER[budget_type]
            merged = {**row["doc"][member], **changes}
            values["doc"] = {member: merged}
            values["budget_update_time"] = ctx.now
            if budget_type == ACCESS_BUDGET:  # AWS: editing an access budget resets its balance
                values.update(ledger={}, budget_set_at=ctx.now)
        store.update(conn, template_id, **values)
        row = _refresh_summaries(conn, row["collaboration_id"], template_id)
    return {"privacyBudgetTemplate": template_view(row)}


@operation("DeletePrivacyBudgetTemplate")
def delete_template(ctx: RequestContext, params: dict) -> None:
    with ctx.db.write() as conn:
        _, row = _template(conn, ctx, params["membershipIdentifier"], params["privacyBudgetTemplateIdentifier"],
                           owner_only=True)
        store.delete(conn, row["id"])
        tag_store.remove(conn, row["arn"])


@operation("ListPrivacyBudgetTemplates")
def list_templates(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]

    def fetch(conn, after, limit):
        return store.page_templates(conn, after, limit, **_visible(conn, ctx, membership_id))

    return list_page(ctx, params, "privacyBudgetTemplateSummaries", (membership_id,), fetch)


@operation("GetCollaborationPrivacyBudgetTemplate")
def get_collaboration_template(ctx: RequestContext, params: dict) -> dict:
    collaboration_id, template_id = params["collaborationIdentifier"], params["privacyBudgetTemplateIdentifier"]
    with ctx.db.read() as conn:
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        row = store.get(conn, collaboration_id, template_id)
    if row is None:
        raise errors.not_found(f"Privacy budget template {template_id} not found in collaboration "
                               f"{collaboration_id}.", template_id, COLLABORATION_RESOURCE_TYPE)
    return {"collaborationPrivacyBudgetTemplate": collaboration_template_view(row)}


@operation("ListCollaborationPrivacyBudgetTemplates")
def list_collaboration_templates(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]

    def fetch(conn, after, limit):
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        return store.page_collaboration_templates(conn, collaboration_id, after, limit)

    return list_page(ctx, params, "collaborationPrivacyBudgetTemplateSummaries", (collaboration_id,), fetch)


# ------------------------------------------------------------------------------------------------ budgets


@operation("ListPrivacyBudgets")
def list_budgets(ctx: RequestContext, params: dict) -> dict:
    membership_id, budget_type = params["membershipIdentifier"], params["privacyBudgetType"]
    resource_arn = params.get("accessBudgetResourceArn")

    def fetch(conn, after, limit):
        scope = _visible(conn, ctx, membership_id)
        return _budget_page(conn, budget_type, resource_arn, after, limit, scope)

    return list_page(ctx, params, "privacyBudgetSummaries", (membership_id, budget_type, resource_arn or ""), fetch,
                     render=lambda row: budget_view(row, ctx.now))


@operation("ListCollaborationPrivacyBudgets")
def list_collaboration_budgets(ctx: RequestContext, params: dict) -> dict:
    collaboration_id, budget_type = params["collaborationIdentifier"], params["privacyBudgetType"]
    resource_arn = params.get("accessBudgetResourceArn")

    def fetch(conn, after, limit):
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        return _budget_page(conn, budget_type, resource_arn, after, limit, {"collaboration_id": collaboration_id})

    return list_page(ctx, params, "collaborationPrivacyBudgetSummaries",
                     (collaboration_id, budget_type, resource_arn or ""), fetch,
                     render=lambda row: collaboration_budget_view(row, ctx.now))


@operation("PreviewPrivacyImpact")
def preview_privacy_impact(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        owned_membership(conn, ctx, params["membershipIdentifier"])
    given = params["parameters"].get("differentialPrivacy")
    if given is None:
        raise errors.validation("parameters must set differentialPrivacy.", field="parameters")
    return {"privacyImpact": {"differentialPrivacy": {
        "aggregations": costs.preview(given["epsilon"], given["usersNoisePerQuery"])}}}


def _budget_page(conn, budget_type: str, resource_arn: str | None, after, limit, scope: dict):
    resource_key = None
    if resource_arn is not None:
        if budget_type != ACCESS_BUDGET:
            return [], None  # only access budgets have a resource
        parsed = _ASSOCIATION_ARN.match(resource_arn)
        if parsed is None:
            return [], None
        resource_key = parsed["a1"] or parsed["a2"]
    return store.page_budgets(conn, budget_type, after, limit, resource_key=resource_key, **scope)


# ------------------------------------------------------------------------------------------------ spending


@dataclass(frozen=True)
class Spent:
    """What a query paid: the epsilon and the noise setting it was priced with (the runner adds noise with the
    same usersNoisePerQuery), and the access budgets it used."""

    epsilon: Fraction
    users_noise_per_query: int | None
    access_budgets: tuple[str, ...]


def spend(conn: sa.Connection, collaboration_id: str, now: float, dp_aggregations: Mapping[str, int],
          table_association_arns: list[str]) -> Spent:
    """Pay for a query inside the caller's write transaction: epsilon for its DP aggregations (type -> how many)
    and one use of every access budget of the associations it reads (ARNs in either form, or association ids).

    Raises BudgetExhausted, before writing anything, when a budget cannot pay or when DP aggregations are asked for
    in a collaboration without a differential privacy template. The caller's transaction makes the spend atomic
    with the query's acceptance; rolled back, it is as if it never happened.
    """
    wanted = {kind: int(n) for kind, n in dp_aggregations.items() if n}
    unknown = [kind for kind in wanted if kind not in AGGREGATION_TYPES]
    if unknown:
        raise ValueError(f"unknown aggregation types: {unknown}")
    writes: list[tuple[str, dict]] = []
    price, noise = Fraction(0), None
    if wanted:
        rows = store.for_spending(conn, collaboration_id, DIFFERENTIAL_PRIVACY, [""])
        if not rows:
            raise BudgetExhausted(f"Collaboration {collaboration_id} has no differential privacy policy (privacy "
                                  "budget template); queries on tables with differential privacy cannot run "
                                  "until the member who owns them creates one.")
        row = rows[0]
        parameters = row["doc"]["differentialPrivacy"]
        ledger = row["ledger"] or {}
        noise = parameters["usersNoisePerQuery"]
        spent, since, price = budgets.dp_spend(
            parameters["epsilon"], noise, row["auto_refresh"], costs.decode_fraction(ledger.get("spent")),
            ledger.get("since", row["budget_set_at"]), wanted, now)
        writes.append((row["id"], {"spent": costs.encode_fraction(spent), "since": since}))
    keys = sorted({_association_id(arn) for arn in table_association_arns})
    used = []
    for row in store.for_spending(conn, collaboration_id, ACCESS_BUDGET, keys) if keys else []:
        parameters = row["doc"]["accessBudget"]
        ledger = budgets.access_spend(parameters["resourceArn"], parameters["budgetParameters"], row["ledger"] or {},
                                      row["budget_set_at"], now)
        writes.append((row["id"], ledger))
        used.append(parameters["resourceArn"])
    for template_id, ledger in writes:  # every budget could pay: now record the spends
        store.update(conn, template_id, ledger=ledger, budget_update_time=now)
    return Spent(price, noise, tuple(used))


def differential_privacy_parameters(conn: sa.Connection, collaboration_id: str) -> dict | None:
    """The collaboration's {epsilon, usersNoisePerQuery}, or None without a differential privacy template."""
    rows = store.for_spending(conn, collaboration_id, DIFFERENTIAL_PRIVACY, [""])
    return dict(rows[0]["doc"]["differentialPrivacy"]) if rows else None


def _association_id(arn: str) -> str:
    parsed = _ASSOCIATION_ARN.match(arn)
    if parsed:
        return parsed["a1"] or parsed["a2"]
    if re.fullmatch(r"[0-9a-f-]{36}", arn):
        return arn
    raise ValueError(f"not a configured table association ARN: {arn}")


# ------------------------------------------------------------------------------------------------ views


def _common(row) -> dict:
    return {"id": row["id"], "arn": row["arn"]}


def template_view(row) -> dict:
    """The PrivacyBudgetTemplate output shape."""
    return {**_common(row), "membershipId": row["membership_id"],
            "membershipArn": arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
            "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
            "createTime": row["create_time"], "updateTime": row["update_time"],
            "privacyBudgetType": row["budget_type"], "autoRefresh": row["auto_refresh"], "parameters": row["doc"]}


def collaboration_template_view(row) -> dict:
    """The CollaborationPrivacyBudgetTemplate output shape."""
    return {**_common(row), "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
            "creatorAccountId": row["account_id"], "createTime": row["create_time"], "updateTime": row["update_time"],
            "privacyBudgetType": row["budget_type"], "autoRefresh": row["auto_refresh"], "parameters": row["doc"]}


def template_summary(row) -> dict:
    """The PrivacyBudgetTemplateSummary output shape."""
    return {**_common(row), "membershipId": row["membership_id"],
            "membershipArn": arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
            "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
            "privacyBudgetType": row["budget_type"], "createTime": row["create_time"],
            "updateTime": row["update_time"]}


def collaboration_template_summary(row) -> dict:
    """The CollaborationPrivacyBudgetTemplateSummary output shape."""
    return {**_common(row), "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
            "creatorAccountId": row["account_id"], "privacyBudgetType": row["budget_type"],
            "createTime": row["create_time"], "updateTime": row["update_time"]}


def budget(row, now: float) -> dict:
    """The PrivacyBudget union, as it stands at `now` (refreshes are computed here, from the calendar)."""
    ledger = row["ledger"] or {}
    if row["budget_type"] == DIFFERENTIAL_PRIVACY:
        parameters = row["doc"]["differentialPrivacy"]
        spent = budgets.dp_spent(costs.decode_fraction(ledger.get("spent")), ledger.get("since", row["budget_set_at"]),
                                 row["auto_refresh"], now)
        return {"differentialPrivacy": {
            "aggregations": costs.budget_aggregations(parameters["epsilon"], spent, parameters["usersNoisePerQuery"]),
            "epsilon": parameters["epsilon"]}}
    parameters = row["doc"]["accessBudget"]
    details, aggregate = budgets.access_details(parameters["budgetParameters"], ledger, row["budget_set_at"], now)
    return {"accessBudget": {"resourceArn": parameters["resourceArn"], "details": details,
                             "aggregateRemainingBudget": aggregate}}


def budget_view(row, now: float) -> dict:
    """The PrivacyBudgetSummary output shape."""
    return {"id": row["budget_id"], "privacyBudgetTemplateId": row["id"], "privacyBudgetTemplateArn": row["arn"],
            "membershipId": row["membership_id"],
            "membershipArn": arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
            "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
            "type": row["budget_type"], "createTime": row["create_time"], "updateTime": row["budget_update_time"],
            "budget": budget(row, now)}


def collaboration_budget_view(row, now: float) -> dict:
    """The CollaborationPrivacyBudgetSummary output shape."""
    return {"id": row["budget_id"], "privacyBudgetTemplateId": row["id"], "privacyBudgetTemplateArn": row["arn"],
            "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
            "creatorAccountId": row["account_id"], "type": row["budget_type"], "createTime": row["create_time"],
            "updateTime": row["budget_update_time"], "budget": budget(row, now)}


# ------------------------------------------------------------------------------------------------ checks


def _union_member(union: dict, budget_type: str, field: str) -> dict:
    """The union member that `budget_type` names (the validator already made sure exactly one is set)."""
    member = UNION_MEMBER[budget_type]
    if member not in union:
        given = next(iter(union), None)
        raise errors.validation(f"A {budget_type} privacy budget template needs {field}.{member}, not "
                                f"{field}.{given}.", field=field,
                                field_message=f"Must be {field}.{member} for privacyBudgetType {budget_type}")
    return union[member]


def _check_budget_parameters(parameters: list[dict], field: str) -> None:
    """At most one calendar period and one lifetime budget (AWS: "up to two budget configurations (period-based
    and lifetime)"); a lifetime budget does not refresh."""
    kinds = [p["type"] for p in parameters]
    periods = [k for k in kinds if k != LIFETIME]
    if len(set(kinds)) != len(kinds) or len(periods) > 1:
        raise errors.validation(f"An access budget has at most one per-period budget (CALENDAR_DAY, CALENDAR_WEEK "
                                f"or CALENDAR_MONTH) and one LIFETIME budget; got {', '.join(kinds)}.",
                                reason="INVALID_CONFIGURATION", field=field)
    for i, parameter in enumerate(parameters, 1):
        if parameter["type"] == LIFETIME and parameter.get("autoRefresh") == "ENABLED":
            raise errors.validation("A LIFETIME budget does not refresh; autoRefresh ENABLED applies to calendar "
                                    "periods only.", reason="INVALID_CONFIGURATION",
                                    field=f"{field}.{i}.member.autoRefresh")


def _check_private_tables(conn: sa.Connection, membership_id: str) -> None:
    """Only a member whose associated tables use differential privacy sets the collaboration's policy."""
    if not any("differentialPrivacy" in (policy.get("v1") or {}).get("custom", {})
               for policy in store.private_table_rules(conn, membership_id)):
        raise errors.access_denied(
            f"Membership {membership_id} has associated no configured table whose custom analysis rule uses "
            "differential privacy; the differential privacy policy is created by the member whose tables use it.")


def _budgeted_association(conn: sa.Connection, ctx: RequestContext, membership_id: str, resource_arn: str) -> str:
    """The id of the association an access budget limits: one of this membership's own."""
    parsed = _ASSOCIATION_ARN.match(resource_arn)
    if (parsed is None or parsed["a1"] is None or parsed["region"] != ctx.region
            or parsed["account"] != ctx.account_id or parsed["m1"] != membership_id
            or association_store.get(conn, membership_id, parsed["a1"]) is None):
        raise errors.not_found(f"Configured table association {resource_arn} not found in membership "
                               f"{membership_id}; an access budget limits one of the membership's own "
                               "associations.", resource_arn, "CONFIGURED_TABLE_ASSOCIATION")
    return parsed["a1"]


def _visible(conn: sa.Connection, ctx: RequestContext, membership_id: str) -> dict:
    """What a membership reads: its collaboration's templates while ACTIVE, only its own otherwise."""
    membership = owned_membership(conn, ctx, membership_id)
    if membership["status"] == "ACTIVE":
        return {"collaboration_id": membership["collaboration_id"]}
    return {"membership_id": membership_id}


def _template(conn: sa.Connection, ctx: RequestContext, membership_id: str, template_id: str, *,
              owner_only: bool = False):
    """(membership, template) for a template the membership may read; with `owner_only`, one it created."""
    membership = owned_membership(conn, ctx, membership_id)
    row = store.get(conn, membership["collaboration_id"], template_id)
    visible = row is not None and (membership["status"] == "ACTIVE" or row["membership_id"] == membership_id)
    if not visible:
        raise errors.not_found(f"Privacy budget template {template_id} not found in membership {membership_id}.",
                               template_id, RESOURCE_TYPE)
    if owner_only and row["membership_id"] != membership_id:
        raise errors.access_denied(f"Privacy budget template {template_id} was created by membership "
                                   f"{row['membership_id']}; only its creator can perform {ctx.operation}.")
    return membership, row


def _budget_taken(budget_type: str, collaboration_id: str, resource_key: str, existing: str | None) -> ServiceError:
    which = f" ({existing})" if existing else ""
    if budget_type == DIFFERENTIAL_PRIVACY:
        return errors.conflict(f"Collaboration {collaboration_id} already has a differential privacy privacy budget "
                               f"template{which}; there is one per collaboration. Use UpdatePrivacyBudgetTemplate "
                               "to change it.", collaboration_id, COLLABORATION_RESOURCE_TYPE, "ALREADY_EXISTS")
    return errors.conflict(f"Configured table association {resource_key} already has an access budget "
                           f"template{which}. Use UpdatePrivacyBudgetTemplate to change it.",
                           resource_key or collaboration_id, "CONFIGURED_TABLE_ASSOCIATION", "ALREADY_EXISTS")


def _refresh_summaries(conn: sa.Connection, collaboration_id: str, template_id: str):
    """Re-encode the template's stored summaries; returns its current row."""
    row = store.get(conn, collaboration_id, template_id)
    store.update(conn, template_id, summary=encode(template_summary(row)),
                 collaboration_summary=encode(collaboration_template_summary(row)))
    return row
