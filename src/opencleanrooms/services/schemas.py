"""Schemas: the relations of a collaboration, as every member sees them, and their analysis rules.

Each configured table association of an ACTIVE membership is one relation (schema type TABLE) named as the
association. Its columns are the configured table's allowed columns with the types of the data; its analysis rule
is the configured table's rule, combined with the association's collaboration analysis rule. Other kinds of relation
(intermediate tables, schema type INTERMEDIATE_TABLE; ID mapping tables, ID_MAPPING_TABLE) come from
OTHER_RELATIONS, which services.wiring fills, and render their own views. A schema's status says whether queries can use it yet, computed from the configuration as it is now. Every INVITED or ACTIVE member of the
collaboration can read its schemas; anyone else gets the collaboration's usual AccessDeniedException. The triggers
of every status reason are listed in docs/behaviour.md under "Configured table associations and schemas".
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from opencleanrooms import catalog
from opencleanrooms.services import analysis_rules, arns, errors
from opencleanrooms.services.access import PARTICIPANT_STATUSES, member_view
from opencleanrooms.services.configured_tables import reference_kind
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.table_associations import RESOURCE_TYPE, can_receive_results
from opencleanrooms.storage import collaborations as collaboration_store
from opencleanrooms.storage import privacy_budgets as privacy_budget_store
from opencleanrooms.storage import table_associations as store

UNKNOWN_TYPE = "unknown"  # a column whose type cannot be read (Athena tables, unreadable data)
NOT_FOUND_CODE = "ResourceNotFoundException"  # BatchGet* errors' code: the error the single Get would raise
QUERY_ABILITIES = frozenset({"CAN_QUERY", "CAN_RUN_JOB"})
# Relations other than configured table associations (intermediate and ID mapping tables), filled by
# services.wiring. Each has `schema_type`, `by_name`, `by_names`, `page` (like the association store's, plus the
# keyword `now`: the request's clock, for statuses that depend on time) and `view`, `summary`, `analysis_rule`
# (output shapes of its rows; the rule may be None).
OTHER_RELATIONS: list = []
_SPAN = 2 ** 53  # list positions: kind index * _SPAN + seq (seq 0: the kind's first page)


@dataclass(frozen=True)
class CollaborationFacts:
    """What a schema's status depends on beyond its own rows."""

    collaboration: dict
    members: dict  # account id -> member row
    membership_ids: frozenset[str]
    has_privacy_policy: bool

    @classmethod
    def read(cls, conn: sa.Connection, collaboration) -> CollaborationFacts:
        members = {m["account_id"]: m for m in collaboration_store.members_of(conn, collaboration["id"])}
        return cls(collaboration, members, frozenset(m["membership_id"] for m in members.values()
                                                     if m["membership_id"]),
                   privacy_budget_store.has_differential_privacy_template(conn, collaboration["id"]))


@operation("GetSchema")
def get_schema(ctx: RequestContext, params: dict) -> dict:
    collaboration_id, name = params["collaborationIdentifier"], params["name"]
    with ctx.db.read() as conn:
        collaboration, _ = member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        row = store.schema_by_name(conn, collaboration_id, name.lower())
        if row is None:
            other, kind = _other_relation(conn, collaboration_id, name.lower(), ctx.now)
            if other is None:
                raise _schema_not_found(name, collaboration_id)
            return {"schema": kind.view(other)}
        facts = CollaborationFacts.read(conn, collaboration)
        source = catalog_source(conn, row)
    return {"schema": schema_view(ctx, facts, row, source)}


@operation("ListSchemas")
def list_schemas(ctx: RequestContext, params: dict) -> dict:
    collaboration_id, schema_type = params["collaborationIdentifier"], params.get("schemaType")

    kinds = [kind for kind in (_TableRelations, *OTHER_RELATIONS) if schema_type in (None, kind.schema_type)]

    def fetch(conn, after, limit):
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        index, seq = divmod(after, _SPAN) if after is not None else (0, 0)
        rows: list = []
        while index < len(kinds) and len(rows) < limit:  # each kind in turn, newest first within it
            page, last = kinds[index].page(conn, collaboration_id, seq or None, limit - len(rows), now=ctx.now)
            rows += [(kinds[index], row) for row in page]
            if last is not None:
                return rows, index * _SPAN + last
            index, seq = index + 1, 0
        more = any(kind.page(conn, collaboration_id, None, 1, now=ctx.now)[0] for kind in kinds[index:])
        return rows, index * _SPAN if more else None

    return list_page(ctx, params, "schemaSummaries", (collaboration_id, schema_type), fetch,
                     lambda item: item[0].summary(item[1]))


@operation("BatchGetSchema")
def batch_get_schema(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]
    names = _distinct(params["names"], key=str.lower)
    with ctx.db.read() as conn:
        collaboration, _ = member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        found = store.schemas_by_names(conn, collaboration_id, [name.lower() for name in names])
        facts = CollaborationFacts.read(conn, collaboration)
        sources = catalog_sources(conn, found)
        others = _other_relations(conn, collaboration_id, [n.lower() for n in names if n.lower() not in found],
                                  ctx.now)
    schemas, failures = [], []
    for name in names:
        row = found.get(name.lower())
        if name.lower() in others:
            other, kind = others[name.lower()]
            schemas.append(kind.view(other))
        elif row is None:
            failures.append({"name": name, "code": NOT_FOUND_CODE,
                             "message": _schema_not_found(name, collaboration_id).message})
        else:
            schemas.append(schema_view(ctx, facts, row, sources[name.lower()]))
    return {"schemas": schemas, "errors": failures}


@operation("GetSchemaAnalysisRule")
def get_schema_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    collaboration_id, name, rule_type = params["collaborationIdentifier"], params["name"], params["type"]
    with ctx.db.read() as conn:
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        row = store.schema_by_name(conn, collaboration_id, name.lower())
        other, kind = ((None, None) if row is not None
                       else _other_relation(conn, collaboration_id, name.lower(), ctx.now))
    if other is not None:
        rule = kind.analysis_rule(other)
        if rule is None or rule["type"] != rule_type:
            raise _rule_not_found(name, rule_type)
        return {"analysisRule": rule}
    if row is None:
        raise _schema_not_found(name, collaboration_id)
    if row["table_rule_type"] != rule_type:
        raise _rule_not_found(name, rule_type)
    return {"analysisRule": analysis_rule_view(row)}


@operation("BatchGetSchemaAnalysisRule")
def batch_get_schema_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]
    requests = _distinct([(r["name"], r["type"]) for r in params["schemaAnalysisRuleRequests"]],
                         key=lambda request: (request[0].lower(), request[1]))
    with ctx.db.read() as conn:
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        found = store.schemas_by_names(conn, collaboration_id, sorted({name.lower() for name, _ in requests}))
        others = _other_relations(conn, collaboration_id,
                                  sorted({n.lower() for n, _ in requests if n.lower() not in found}), ctx.now)
    rules, failures = [], []
    for name, rule_type in requests:
        row = found.get(name.lower())
        if name.lower() in others:
            other, kind = others[name.lower()]
            rule = kind.analysis_rule(other)
            if rule is not None and rule["type"] == rule_type:
                rules.append(rule)
            else:
                failures.append({"name": name, "type": rule_type, "code": NOT_FOUND_CODE,
                                 "message": _rule_not_found(name, rule_type).message})
            continue
        if row is not None and row["table_rule_type"] == rule_type:
            rules.append(analysis_rule_view(row))
            continue
        error = _schema_not_found(name, collaboration_id) if row is None else _rule_not_found(name, rule_type)
        failures.append({"name": name, "type": rule_type, "code": NOT_FOUND_CODE, "message": error.message})
    return {"analysisRules": rules, "errors": failures}


# ------------------------------------------------------------------------------------------------ views


def schema_summary(row) -> dict:
    """The SchemaSummary output shape."""
    doc = row["table_doc"]
    summary = {
        "name": row["name"],
        "type": "TABLE",
        "creatorAccountId": row["account_id"],
        "createTime": row["create_time"],
        "updateTime": _schema_update_time(row),
        "collaborationId": row["collaboration_id"],
        "collaborationArn": _collaboration_arn(row),
        "analysisRuleTypes": _analysis_rule_types(row),
        "analysisMethod": doc["analysisMethod"],
        "resourceArn": _resource_arn(row),
    }
    if "selectedAnalysisMethods" in doc:
        summary["selectedAnalysisMethods"] = doc["selectedAnalysisMethods"]
    return summary


def schema_view(ctx: RequestContext, facts: CollaborationFacts, row, source) -> dict:
    """The Schema output shape."""
    doc = row["table_doc"]
    types = column_types(ctx, doc["tableReference"], source)
    view = {
        "columns": [{"name": column, "type": types.get(column, UNKNOWN_TYPE)} for column in doc["allowedColumns"]],
        "partitionKeys": [],
        "analysisRuleTypes": _analysis_rule_types(row),
        "analysisMethod": doc["analysisMethod"],
    }
    if "selectedAnalysisMethods" in doc:
        view["selectedAnalysisMethods"] = doc["selectedAnalysisMethods"]
    view.update({
        "creatorAccountId": row["account_id"],
        "name": row["name"],
        "collaborationId": row["collaboration_id"],
        "collaborationArn": _collaboration_arn(row),
        "description": row["doc"].get("description", ""),
        "createTime": row["create_time"],
        "updateTime": _schema_update_time(row),
        "type": "TABLE",
        "schemaStatusDetails": status_details(row, facts),
        "resourceArn": _resource_arn(row),
        "schemaTypeProperties": {"configuredTableAssociation": {"configuredTableAssociationId": row["id"]}},
    })
    return view


def analysis_rule_view(row) -> dict:
    """The AnalysisRule output shape: the configured table's rule, the association's, and the two combined."""
    rule_type = row["table_rule_type"]
    member = analysis_rules.POLICY_MEMBERS[rule_type]
    collaboration_body = _collaboration_body(row)
    view = {
        "collaborationId": row["collaboration_id"],
        "type": rule_type,
        "name": row["name"],
        "createTime": row["table_rule_create_time"],
        "updateTime": max(t for t in (row["table_rule_update_time"], row["rule_update_time"]) if t is not None),
        "policy": row["table_rule_policy"],
    }
    if collaboration_body is not None:
        view["collaborationPolicy"] = row["rule_policy"]
    view["consolidatedPolicy"] = {"v1": {member: consolidated(row["table_rule_policy"]["v1"][member],
                                                              collaboration_body)}}
    return view


def consolidated(table_body: dict, collaboration_body: dict | None) -> dict:
    """The configured table's rule with the collaboration rule's result receivers and additional analyses. Where
    both rules list them (a CUSTOM table rule may), only the values both allow remain."""
    merged = dict(table_body)
    for key in ("allowedResultReceivers", "allowedAdditionalAnalyses"):
        table_values = table_body.get(key)
        values = (collaboration_body or {}).get(key)
        if values is None:
            continue
        merged[key] = values if table_values is None else [v for v in values if v in table_values]
    return merged


# ------------------------------------------------------------------------------------------------ status


def status_details(row, facts: CollaborationFacts) -> list[dict]:
    """SchemaStatusDetail entries: DIRECT_ANALYSIS always; ADDITIONAL_ANALYSIS when either rule allows additional
    analyses. Each is READY when it has no reason to be NOT_READY."""
    rule_type = row["table_rule_type"]
    if rule_type is None:
        return [_detail("DIRECT_ANALYSIS", None, False, [_reason(
            "ANALYSIS_RULE_MISSING", "The configured table has no analysis rule.")])]
    table_body = row["table_rule_policy"]["v1"][analysis_rules.POLICY_MEMBERS[rule_type]]
    collaboration_body = _collaboration_body(row)
    private = rule_type == "CUSTOM" and "differentialPrivacy" in table_body
    base = _table_reasons(row, rule_type, table_body, private, facts)

    direct = list(base)
    if collaboration_body is None:
        direct.append(_reason("COLLABORATION_ANALYSIS_RULE_NOT_CONFIGURED",
                              "The configured table association has no collaboration analysis rule."))
    else:
        receivers = collaboration_body.get("allowedResultReceivers") or []
        allowed_by_table = table_body.get("allowedResultReceivers")
        refused = [account for account in receivers if not can_receive_results(facts.members.get(account))
                   or (allowed_by_table is not None and account not in allowed_by_table)]
        if not receivers:
            direct.append(_reason("RESULT_RECEIVERS_NOT_CONFIGURED",
                                  "The collaboration analysis rule names no allowed result receivers."))
        elif refused:
            direct.append(_reason("RESULT_RECEIVERS_NOT_ALLOWED",
                                  f"These allowed result receivers cannot receive results: {', '.join(refused)}."))
    details = [_detail("DIRECT_ANALYSIS", rule_type, private, direct)]

    table_additional = table_body.get("additionalAnalyses", "NOT_ALLOWED")
    additional = (collaboration_body or {}).get("allowedAdditionalAnalyses") or []
    if table_additional != "NOT_ALLOWED" or additional:
        reasons = list(base)
        allowed_by_table = table_body.get("allowedAdditionalAnalyses")
        if table_additional == "NOT_ALLOWED":
            reasons.append(_reason("ADDITIONAL_ANALYSES_NOT_ALLOWED",
                                   "The configured table's analysis rule does not allow additional analyses."))
        elif collaboration_body is None:
            reasons.append(_reason("COLLABORATION_ANALYSIS_RULE_NOT_CONFIGURED",
                                   "The configured table association has no collaboration analysis rule."))
        elif not additional:
            reasons.append(_reason("ADDITIONAL_ANALYSES_NOT_CONFIGURED",
                                   "The collaboration analysis rule names no allowed additional analyses."))
        elif allowed_by_table is not None and any(arn not in allowed_by_table for arn in additional):
            reasons.append(_reason("ADDITIONAL_ANALYSES_NOT_ALLOWED",
                                   "The collaboration analysis rule allows additional analyses the configured "
                                   "table's analysis rule does not."))
        details.append(_detail("ADDITIONAL_ANALYSIS", rule_type, private, reasons))
    return details


def _table_reasons(row, rule_type: str, body: dict, private: bool, facts: CollaborationFacts) -> list[dict]:
    """Reasons that come from the configured table's rule in this collaboration (they hold for every analysis)."""
    reasons = []
    engine = facts.collaboration["doc"].get("analyticsEngine")
    if engine == "SPARK" and (rule_type != "CUSTOM" or private):
        what = "differential privacy" if rule_type == "CUSTOM" else f"{rule_type} analysis rules"
        reasons.append(_reason("ANALYSIS_RULE_TYPES_NOT_COMPATIBLE",
                               f"The collaboration's SPARK analytics engine does not support {what}."))
    if row["rule_type"] is not None and row["rule_type"] != rule_type:  # kept from happening; shown if it does
        reasons.append(_reason("ANALYSIS_RULE_TYPES_NOT_COMPATIBLE",
                               f"The collaboration analysis rule is {row['rule_type']}; the configured table's "
                               f"analysis rule is {rule_type}."))
    if rule_type == "CUSTOM":
        analyses = body["allowedAnalyses"]
        wildcards = [a for a in analyses if a in analysis_rules.ANY_ANALYSIS]
        if wildcards:
            providers = [p for p in body.get("allowedAnalysisProviders") or []
                         if (m := facts.members.get(p)) is not None and m["status"] in PARTICIPANT_STATUSES
                         and QUERY_ABILITIES & set(m["doc"]["abilities"])]
            if not providers:
                reasons.append(_reason("ANALYSIS_PROVIDERS_NOT_CONFIGURED",
                                       "No allowed analysis provider is a member of the collaboration who can run "
                                       "queries or jobs."))
        elif not any(_template_membership(arn) in facts.membership_ids for arn in analyses):
            reasons.append(_reason("ANALYSIS_TEMPLATES_NOT_CONFIGURED",
                                   "The custom analysis rule allows no analysis template of this collaboration."))
        if private and not facts.has_privacy_policy:
            reasons.append(_reason("DIFFERENTIAL_PRIVACY_POLICY_NOT_CONFIGURED",
                                   "The collaboration has no differential privacy policy."))
    return reasons


def _template_membership(arn: str) -> str | None:
    """The membership id in an analysis template ARN (`...:membership/<id>/analysistemplate/<id>`)."""
    parsed = arns.parse(arn)
    if parsed is None or parsed.resource_type != "membership" or len(parsed.resource_path) != 3:
        return None
    return parsed.resource_path[0]


def _detail(analysis_type: str, rule_type: str | None, private: bool, reasons: list[dict]) -> dict:
    detail: dict = {"status": "NOT_READY" if reasons else "READY"}
    if reasons:
        detail["reasons"] = reasons
    if rule_type is not None:
        detail["analysisRuleType"] = rule_type
    if private:
        detail["configurations"] = ["DIFFERENTIAL_PRIVACY"]
    detail["analysisType"] = analysis_type
    return detail


def _reason(code: str, message: str) -> dict:
    return {"code": code, "message": message}


# ------------------------------------------------------------------------------------------------ helpers


class _TableRelations:
    """Configured table associations as a kind of relation (for ListSchemas)."""

    schema_type = "TABLE"
    summary = staticmethod(lambda row: schema_summary(row))

    @staticmethod
    def page(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int, *, now: float):
        return store.page_schemas(conn, collaboration_id, after, limit)  # summaries do not depend on time


def _other_relation(conn: sa.Connection, collaboration_id: str, name_key: str, now: float):
    """(row, kind) of the relation of another kind with that name, or (None, None)."""
    for kind in OTHER_RELATIONS:
        row = kind.by_name(conn, collaboration_id, name_key, now=now)
        if row is not None:
            return row, kind
    return None, None


def _other_relations(conn: sa.Connection, collaboration_id: str, name_keys: list[str], now: float) -> dict:
    found: dict = {}
    for kind in OTHER_RELATIONS:
        if name_keys:
            found.update({key: (row, kind)
                          for key, row in kind.by_names(conn, collaboration_id, name_keys, now=now).items()})
    return found


def catalog_source(conn: sa.Connection, row):
    """The catalog entry of a Glue-backed schema's table, in its owner's catalog (None otherwise)."""
    key = _catalog_key(row)
    return None if key is None else catalog.resolve(conn, *key)


def catalog_sources(conn: sa.Connection, rows: dict) -> dict:
    """catalog_source of each of the schemas `rows` (key -> row), in one statement for up to 200 Glue-backed ones
    rather than one each: key -> entry or None."""
    keys = {name: _catalog_key(row) for name, row in rows.items()}
    found = catalog.resolve_many(conn, [key for key in keys.values() if key is not None])
    return {name: None if key is None else found[key] for name, key in keys.items()}


def _catalog_key(row) -> tuple[str, str, str, str] | None:
    """(account, region, database, table) of the catalog entry a Glue-backed schema reads, or None."""
    reference = row["table_doc"]["tableReference"]
    if reference_kind(reference) != "glue":
        return None
    glue = reference["glue"]
    return row["account_id"], glue.get("region") or row["table_region"], glue["databaseName"], glue["tableName"]


def column_types(ctx: RequestContext, reference: dict, source) -> dict[str, str]:
    """Column name -> type: read from the data for Glue tables, from tableSchema for Snowflake; nothing for Athena
    or data that cannot be read now."""
    kind = reference_kind(reference)
    if kind == "snowflake":
        return {c["columnName"]: c["columnType"] for c in reference["snowflake"]["tableSchema"].get("v1") or []}
    if kind != "glue" or source is None:
        return {}
    try:
        return {column.name: column.type for column in catalog.read_schema(source, ctx.s3)}
    except catalog.CatalogError:
        return {}


def _collaboration_body(row) -> dict | None:
    if row["rule_type"] is None:
        return None
    return row["rule_policy"]["v1"][analysis_rules.POLICY_MEMBERS[row["rule_type"]]]


def _analysis_rule_types(row) -> list[str]:
    return [row["table_rule_type"]] if row["table_rule_type"] else []


def _schema_update_time(row) -> float:
    """The latest change of anything the schema shows: the association, its configured table, either rule."""
    return max(t for t in (row["update_time"], row["table_update_time"], row["table_rule_update_time"],
                           row["rule_update_time"]) if t is not None)


def _collaboration_arn(row) -> str:
    return row["collaboration_arn"]


def _resource_arn(row) -> str:
    return arns.membership_resource_arn(row["region"], row["account_id"], row["membership_id"],
                                        "configuredtableassociation", row["id"])


def _schema_not_found(name: str, collaboration_id: str):
    return errors.not_found(f"Schema {name} not found in collaboration {collaboration_id}.", name, RESOURCE_TYPE)


def _rule_not_found(name: str, rule_type: str):
    return errors.not_found(f"Schema {name} has no {rule_type} analysis rule.", name, RESOURCE_TYPE)


def _distinct(items: list, key) -> list:
    seen, kept = set(), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            kept.append(item)
    return kept
