"""Configured tables and their analysis rules: an account's tables, the columns it allows, and how they may be
queried.

Configured tables are account-level: only the owning account sees them, in the region it created them in; anyone
else's table, like an unknown id, is ResourceNotFoundException. A Glue table reference must resolve in the owner's
own data catalog, and its allowed columns must be columns of the data.
"""

from __future__ import annotations

import logging

from collections.abc import Callable

import sqlalchemy as sa

from opencleanrooms import catalog
from opencleanrooms.encoded import encode
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import analysis_rules, arns, errors, locks
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import configured_tables as store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import DuplicateError

RESOURCE_TYPE = "CONFIGURED_TABLE"
# Checks that a configured table is still in use (associated with a collaboration, ...): each returns a description
# of what uses it, or None. Families register theirs; DeleteConfiguredTable refuses while any reports something.
DELETE_CHECKS: list[Callable[[sa.Connection, str], str | None]] = []
# The same for deleting a table's analysis rule: (conn, configured table id, rule type) -> description or None.
RULE_DELETE_CHECKS: list[Callable[[sa.Connection, str, str], str | None]] = []
# Not adjustable, so not in services.quotas: the size of an analysis rule policy as JSON.
MAX_RULE_POLICY_KB = 100

_DOC_FIELDS = ("description", "tableReference", "allowedColumns", "analysisMethod", "selectedAnalysisMethods")
_UPDATE_ATTEMPTS = 3

def owns_table(conn: sa.Connection, ctx: RequestContext, ids: tuple[str, ...]) -> bool:
    """Configured table ARNs (`configuredtable/<id>`), for their owner only."""
    return len(ids) == 1 and store.get(conn, ctx.region, ctx.account_id, ids[0]) is not None

log = logging.getLogger("opencleanrooms")


@operation("CreateConfiguredTable")
def create_configured_table(ctx: RequestContext, params: dict) -> dict:
    reference, allowed = params["tableReference"], params["allowedColumns"]
    _check_allowed_columns(ctx, allowed)
    _check_analysis_methods(params["analysisMethod"], params.get("selectedAnalysisMethods"))
    check_new_resource_tags(params.get("tags") or {})
    _check_columns_exist(ctx, reference, allowed)
    configured_table_id = arns.new_id()
    arn = arns.configured_table_arn(ctx.region, ctx.account_id, configured_table_id)
    with ctx.db.write(locks=[locks.account(ctx)]) as conn:  # count then insert, never two at once
        ctx.quotas.check("configured_tables", store.count_for_account(conn, ctx.region, ctx.account_id) + 1)
        store.insert(conn, {
            "id": configured_table_id, "region": ctx.region, "account_id": ctx.account_id, "arn": arn,
            "name": params["name"], "create_time": ctx.now, "update_time": ctx.now,
            "doc": {key: params[key] for key in _DOC_FIELDS if key in params},
        })
        tag_store.put(conn, arn, params.get("tags") or {})
        row = _refresh_summary(conn, configured_table_id)
    return {"configuredTable": configured_table_view(row)}


@operation("GetConfiguredTable")
def get_configured_table(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        row = _owned(conn, ctx, params["configuredTableIdentifier"])
    return {"configuredTable": configured_table_view(row)}


@operation("UpdateConfiguredTable")
def update_configured_table(ctx: RequestContext, params: dict) -> dict:
    configured_table_id = params["configuredTableIdentifier"]
    if "allowedColumns" in params:
        _check_allowed_columns(ctx, params["allowedColumns"])
    # The catalog is read outside the write transaction (a schema read may download from S3); the write then
    # proceeds only if the table is still what was checked, else the checks run again.
    for _ in range(_UPDATE_ATTEMPTS):
        with ctx.db.read() as conn:
            checked = _owned(conn, ctx, configured_table_id)["doc"]
        doc = _updated_doc(checked, params)
        if "tableReference" in params or "allowedColumns" in params:
            _check_columns_exist(ctx, doc["tableReference"], doc["allowedColumns"])
        with ctx.db.write() as conn:
            row = _owned(conn, ctx, configured_table_id)
            if row["doc"] != checked:
                continue
            rule = store.get_rule(conn, configured_table_id)
            if rule is not None:
                _check_rule_still_fits(rule, doc)
            store.update(conn, configured_table_id, name=params.get("name", row["name"]), doc=doc,
                         update_time=ctx.now)
            row = _refresh_summary(conn, configured_table_id)
        return {"configuredTable": configured_table_view(row)}
    raise errors.conflict(f"Configured table {configured_table_id} is being changed by other requests; retry.",
                          configured_table_id, RESOURCE_TYPE, "INVALID_STATE")


@operation("DeleteConfiguredTable")
def delete_configured_table(ctx: RequestContext, params: dict) -> None:
    configured_table_id = params["configuredTableIdentifier"]
    with ctx.db.write(locks=[locks.configured_table(configured_table_id)]) as conn:  # against new associations
        row = _owned(conn, ctx, configured_table_id)
        for check in DELETE_CHECKS:
            left = check(conn, configured_table_id)
            if left:
                raise errors.conflict(f"Configured table {configured_table_id} is still in use: {left}. Remove "
                                      "its associations first.", configured_table_id, RESOURCE_TYPE,
                                      "SUBRESOURCES_EXIST")
        store.delete(conn, configured_table_id)
        tag_store.remove(conn, row["arn"])


@operation("ListConfiguredTables")
def list_configured_tables(ctx: RequestContext, params: dict) -> dict:
    return list_page(ctx, params, "configuredTableSummaries", (),
                     lambda conn, after, limit: store.page_for_account(conn, ctx.region, ctx.account_id, after,
                                                                       limit))


# ------------------------------------------------------------------------------------------------ analysis rules


@operation("CreateConfiguredTableAnalysisRule")
def create_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    configured_table_id, rule_type, policy = _rule_params(params, creating=True)
    try:
        with ctx.db.write() as conn:
            table = _owned(conn, ctx, configured_table_id)
            if table["rule_type"] is not None:
                raise _rule_exists(configured_table_id, table["rule_type"])
            _check_rule(rule_type, policy, table["doc"])
            store.insert_rule(conn, {"configured_table_id": configured_table_id, "type": rule_type,
                                     "create_time": ctx.now, "update_time": ctx.now, "policy": policy})
            _refresh_summary(conn, configured_table_id)
            rule = store.get_rule(conn, configured_table_id)
    except DuplicateError:  # a concurrent create won (only possible where writers do not queue)
        raise _rule_exists(configured_table_id, None) from None
    return {"analysisRule": analysis_rule_view(table, rule)}


@operation("GetConfiguredTableAnalysisRule")
def get_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        table, rule = _owned_rule(conn, ctx, params["configuredTableIdentifier"], params["analysisRuleType"])
    return {"analysisRule": analysis_rule_view(table, rule)}


@operation("UpdateConfiguredTableAnalysisRule")
def update_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    configured_table_id, rule_type, policy = _rule_params(params, creating=False)
    with ctx.db.write() as conn:
        table, _ = _owned_rule(conn, ctx, configured_table_id, rule_type)
        _check_rule(rule_type, policy, table["doc"])
        store.update_rule(conn, configured_table_id, policy=policy, update_time=ctx.now)
        rule = store.get_rule(conn, configured_table_id)
    return {"analysisRule": analysis_rule_view(table, rule)}


@operation("DeleteConfiguredTableAnalysisRule")
def delete_analysis_rule(ctx: RequestContext, params: dict) -> None:
    configured_table_id, rule_type = params["configuredTableIdentifier"], params["analysisRuleType"]
    with ctx.db.write() as conn:
        _owned_rule(conn, ctx, configured_table_id, rule_type)
        for check in RULE_DELETE_CHECKS:
            left = check(conn, configured_table_id, rule_type)
            if left:
                raise errors.conflict(f"The {rule_type} analysis rule of configured table {configured_table_id} "
                                      f"is still in use: {left}.", configured_table_id, RESOURCE_TYPE,
                                      "SUBRESOURCES_EXIST")
        store.delete_rule(conn, configured_table_id)
        _refresh_summary(conn, configured_table_id)


# ------------------------------------------------------------------------------------------------ views


def configured_table_view(row) -> dict:
    """The ConfiguredTable output shape."""
    doc = row["doc"]
    view = {"id": row["id"], "arn": row["arn"], "name": row["name"]}
    if "description" in doc:
        view["description"] = doc["description"]
    view.update(tableReference=doc["tableReference"], createTime=row["create_time"], updateTime=row["update_time"],
                analysisRuleTypes=analysis_rule_types(row), analysisMethod=doc["analysisMethod"],
                allowedColumns=doc["allowedColumns"])
    if "selectedAnalysisMethods" in doc:
        view["selectedAnalysisMethods"] = doc["selectedAnalysisMethods"]
    return view


def configured_table_summary(row) -> dict:
    """The ConfiguredTableSummary output shape."""
    doc = row["doc"]
    summary = {"id": row["id"], "arn": row["arn"], "name": row["name"], "createTime": row["create_time"],
               "updateTime": row["update_time"], "analysisRuleTypes": analysis_rule_types(row),
               "analysisMethod": doc["analysisMethod"]}
    if "selectedAnalysisMethods" in doc:
        summary["selectedAnalysisMethods"] = doc["selectedAnalysisMethods"]
    return summary


def analysis_rule_view(table, rule) -> dict:
    """The ConfiguredTableAnalysisRule output shape."""
    return {"configuredTableId": table["id"], "configuredTableArn": table["arn"], "policy": rule["policy"],
            "type": rule["type"], "createTime": rule["create_time"], "updateTime": rule["update_time"]}


def analysis_rule_types(row) -> list[str]:
    return [row["rule_type"]] if row["rule_type"] else []


def reference_kind(table_reference: dict) -> str:
    """glue, snowflake or athena: the member of the TableReference union that is set."""
    return next(iter(table_reference))


# ------------------------------------------------------------------------------------------------ checks


def _owned(conn: sa.Connection, ctx: RequestContext, configured_table_id: str):
    """The caller's own configured table; anyone else's, like an unknown one, is ResourceNotFoundException."""
    row = store.get(conn, ctx.region, ctx.account_id, configured_table_id)
    if row is None:
        raise errors.not_found(f"Configured table {configured_table_id} not found.", configured_table_id,
                               RESOURCE_TYPE)
    return row


def _owned_rule(conn: sa.Connection, ctx: RequestContext, configured_table_id: str, rule_type: str):
    table = _owned(conn, ctx, configured_table_id)
    rule = store.get_rule(conn, configured_table_id)
    if rule is None or rule["type"] != rule_type:
        raise errors.not_found(f"Configured table {configured_table_id} has no {rule_type} analysis rule.",
                               configured_table_id, RESOURCE_TYPE)
    return table, rule


def _rule_params(params: dict, *, creating: bool) -> tuple[str, str, dict]:
    rule_type, policy = params["analysisRuleType"], params["analysisRulePolicy"]
    analysis_rules.policy_body(rule_type, policy)  # the request alone is wrong: say so before looking anything up
    size_kb = len(encode(policy).encode()) / 1024
    if size_kb > MAX_RULE_POLICY_KB:
        message = f"The analysis rule policy is {size_kb:.1f} KB as JSON; at most {MAX_RULE_POLICY_KB} KB is allowed."
        if creating:  # UpdateConfiguredTableAnalysisRule does not declare ServiceQuotaExceededException
            raise ServiceError("ServiceQuotaExceededException", message, quotaName="Analysis rule size (KB)",
                               quotaValue=float(MAX_RULE_POLICY_KB))
        raise errors.validation(message, field="analysisRulePolicy", field_message=message)
    return params["configuredTableIdentifier"], rule_type, policy


def _rule_exists(configured_table_id: str, existing: str | None) -> ServiceError:
    which = f" ({existing})" if existing else ""
    return errors.conflict(f"Configured table {configured_table_id} already has an analysis rule{which}; a "
                           "configured table can have only one.", configured_table_id, RESOURCE_TYPE,
                           "ALREADY_EXISTS")


def _check_rule(rule_type: str, policy: dict, table_doc: dict) -> None:
    analysis_rules.check_rule(rule_type, policy, table_doc["allowedColumns"],
                              reference_kind(table_doc["tableReference"]))


def _check_rule_still_fits(rule, doc: dict) -> None:
    """An update may not take away columns the table's analysis rule names, nor move the table to a source its
    rule does not support (non-S3 sources: CUSTOM rules only, without differential privacy)."""
    in_use = analysis_rules.columns_used(rule["type"], rule["policy"])
    removed = sorted(in_use - set(doc["allowedColumns"]))
    if removed:
        raise errors.validation(
            f"Columns used by the configured table's {rule['type']} analysis rule cannot be removed from "
            f"allowedColumns: {', '.join(removed)}. Update the analysis rule first.",
            reason="INVALID_CONFIGURATION", field="allowedColumns",
            field_message=f"Used by the analysis rule: {', '.join(removed)}")
    kind = reference_kind(doc["tableReference"])
    if kind in analysis_rules.S3_REFERENCES:
        return
    if rule["type"] != "CUSTOM":
        what = f"a {rule['type']} analysis rule (they support only CUSTOM rules)"
    elif "differentialPrivacy" in rule["policy"]["v1"]["custom"]:
        what = "an analysis rule with differential privacy"
    else:
        return
    raise errors.validation(
        f"{kind.capitalize()} tables cannot have {what}; update or delete the configured table's analysis rule "
        "first.", reason="INVALID_CONFIGURATION", field="tableReference",
        field_message=f"Not supported for {kind} tables by the table's analysis rule")


def _check_allowed_columns(ctx: RequestContext, allowed: list[str]) -> None:
    analysis_rules.check_no_duplicates(allowed, "allowedColumns")
    ctx.quotas.check("allowed_columns", len(allowed))


def _check_analysis_methods(method: str, selected: list[str] | None) -> None:
    """selectedAnalysisMethods, when given, lists at least two methods (so both) and goes with MULTIPLE."""
    if selected is None:
        return
    if len(set(selected)) < 2 or len(selected) != len(set(selected)):
        raise errors.validation(
            "selectedAnalysisMethods must list at least two distinct analysis methods when it is given.",
            field="selectedAnalysisMethods", field_message="Must list at least two distinct analysis methods")
    if method != "MULTIPLE":
        raise errors.validation(
            f"selectedAnalysisMethods can be given only with analysisMethod MULTIPLE, not {method}.",
            reason="INVALID_CONFIGURATION", field="selectedAnalysisMethods",
            field_message="Requires analysisMethod MULTIPLE")


def _updated_doc(doc: dict, params: dict) -> dict:
    updated = dict(doc)
    updated.update({key: params[key] for key in _DOC_FIELDS if key in params})
    if params.get("analysisMethod", "MULTIPLE") != "MULTIPLE" and "selectedAnalysisMethods" not in params:
        updated.pop("selectedAnalysisMethods", None)  # they describe MULTIPLE, which the table no longer uses
    if "analysisMethod" in params or "selectedAnalysisMethods" in params:
        _check_analysis_methods(updated["analysisMethod"], updated.get("selectedAnalysisMethods"))
    return updated


def _check_columns_exist(ctx: RequestContext, reference: dict, allowed: list[str]) -> None:
    """A Glue reference must resolve in the caller's own catalog and its data must have every allowed column; a
    Snowflake reference's allowed columns must be in its tableSchema. Athena tables cannot be read here."""
    kind = reference_kind(reference)
    if kind == "glue":
        glue = reference["glue"]
        database, table, region = glue["databaseName"], glue["tableName"], glue.get("region") or ctx.region
        with ctx.db.read() as conn:
            source = catalog.resolve(conn, ctx.account_id, region, database, table)
        if source is None:
            raise errors.validation(
                f"{catalog.TableNotFound(ctx.account_id, database, table)} (region {region}).",
                field="tableReference.glue", field_message=f"Table {database}.{table} not found")
        try:
            columns = {column.name for column in catalog.read_schema(source, ctx.s3)}
        except catalog.CatalogError as exc:
            # The detail names server-side locations: it goes to the log, the caller gets the request id.
            log.warning("request %s: catalog table %s.%s of account %s cannot be read: %s", ctx.request_id,
                        database, table, ctx.account_id, exc)
            raise errors.validation(
                f"Table {database}.{table} cannot be read: its data is missing or unreadable. The server log has "
                f"the details under request ID {ctx.request_id}.", field="tableReference.glue",
                field_message=f"Table {database}.{table} cannot be read") from None
        what = f"Table {database}.{table}"
    elif kind == "snowflake":
        columns = {column["columnName"] for column in reference["snowflake"]["tableSchema"].get("v1") or []}
        what = "The Snowflake table's tableSchema"
    else:
        return
    missing = [column for column in allowed if column not in columns]
    if missing:
        raise errors.validation(f"{what} has no column(s) {', '.join(missing)} named in allowedColumns.",
                                field="allowedColumns", field_message=f"Not columns of the table: {', '.join(missing)}")


def _refresh_summary(conn: sa.Connection, configured_table_id: str):
    """Re-encode the table's stored summary; returns the table's current row."""
    row = store.get_any(conn, configured_table_id)
    store.set_summary(conn, configured_table_id, encode(configured_table_summary(row)))
    return row
