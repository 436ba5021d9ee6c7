"""Analysis log exports: StartAnalysisLogExport, GetAnalysisLogExport, ListAnalysisLogExports.

A member with the CAN_EXPORT_QUERY_ANALYSIS_LOG ability copies the redacted log of a protected query it ran or paid
for to its own S3 location (the server's S3 endpoint, or the local results directory when it has none). As AWS
documents: the ability alone is not enough (the caller must be the query's runner or payer), the query must have
ended after reaching execution (a query refused by its rules, or cancelled before it started, has no log), and
queries with differential privacy cannot be exported. The log holds what the query log records — the query's
shape, its relations, its status, duration and error — with every data value redacted: literals leave the SQL and
quoted values leave engine messages (policy/redact.py). The export is written during the call, after it is recorded
IN_PROGRESS, and the call answers with that record, as AWS's does; GetAnalysisLogExport then shows SUCCESS or
FAILED. What each choice rests on is in docs/behaviour.md under "Analysis log exports".
"""

from __future__ import annotations

import datetime
import logging

import sqlalchemy as sa

from opencleanrooms import results
from opencleanrooms.policy.redact import redact_message, redact_sql
from opencleanrooms.results.logs import write_log_export
from opencleanrooms.services import arns, errors, locks
from opencleanrooms.services.access import owned_membership
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.storage import analysis_log_exports as store
from opencleanrooms.storage import collaborations as collaboration_store
from opencleanrooms.storage import protected_queries as query_store

log = logging.getLogger("opencleanrooms.exports")

ABILITY = "CAN_EXPORT_QUERY_ANALYSIS_LOG"
DEADLINE_SECONDS = 600.0  # an export still IN_PROGRESS this long after it started was interrupted
_S3_FIELD = "resultConfiguration.outputConfiguration.s3"
INTERRUPTED = {"code": "INTERNAL_ERROR",
               "message": "The export was interrupted because the server writing it stopped; start it again."}


@operation("StartAnalysisLogExport")
def start_export(ctx: RequestContext, params: dict) -> dict:
    membership_id, query_id = params["membershipIdentifier"], params["analysisId"]
    s3 = params["resultConfiguration"]["outputConfiguration"]["s3"]
    bucket, key_prefix = s3["bucket"], s3.get("keyPrefix", "")
    try:
        results.result_key_prefix(key_prefix, query_id)
    except ValueError:
        raise errors.validation(f"keyPrefix {key_prefix!r} is not a usable S3 key prefix: it may not contain `.` or "
                                "`..` segments.", field=f"{_S3_FIELD}.keyPrefix") from None
    export_id = arns.new_id()
    # The collaboration's key: the runner and the payer (two memberships) may export the same query at once, and
    # the in-progress check then insert must not interleave.
    with ctx.db.write(locks=locks.membership_keys(ctx, membership_id)) as conn:
        membership = owned_membership(conn, ctx, membership_id)
        query = _exportable_query(conn, ctx, membership, query_id)
        if store.in_progress_to(conn, query_id, bucket, key_prefix, ctx.now):
            raise errors.validation(f"An export of protected query {query_id} to s3://{bucket}/{key_prefix} is "
                                    "already in progress; wait for it, or export to another key prefix.",
                                    reason="INVALID_CONFIGURATION", field=f"{_S3_FIELD}.keyPrefix")
        row = {"id": export_id, "region": ctx.region, "account_id": ctx.account_id,
               "collaboration_id": membership["collaboration_id"], "membership_id": membership_id,
               "analysis_id": query_id, "analysis_type": params["analysisType"], "status": "IN_PROGRESS",
               "create_time": ctx.now, "update_time": ctx.now, "deadline": ctx.now + DEADLINE_SECONDS,
               "doc": {"resultConfiguration": params["resultConfiguration"]}}
        store.insert(conn, row)
    _export(ctx, row, query)
    return {"analysisLogExport": export_view(row)}


@operation("GetAnalysisLogExport")
def get_export(ctx: RequestContext, params: dict) -> dict:
    membership_id, export_id = params["membershipIdentifier"], params["analysisLogExportIdentifier"]
    with ctx.db.read() as conn:
        owned_membership(conn, ctx, membership_id)
        row = store.get(conn, membership_id, export_id)
    if row is None:
        raise errors.not_found(f"Analysis log export {export_id} not found.", export_id, "MEMBERSHIP")
    if _interrupted(ctx, row):
        row = _close_interrupted(ctx, row)
    return {"analysisLogExport": export_view(row)}


@operation("ListAnalysisLogExports")
def list_exports(ctx: RequestContext, params: dict):
    membership_id = params["membershipIdentifier"]
    analysis_id, status = params.get("analysisIdentifier"), params.get("status")
    with ctx.db.read() as conn:
        owned_membership(conn, ctx, membership_id)
        stale = [r for r in store.in_progress_of(conn, membership_id) if _interrupted(ctx, r)]
    for row in stale:  # closed first, so that the status filter sees what Get would show
        _close_interrupted(ctx, row)

    def fetch(conn, after, limit):
        return store.page_for_membership(conn, membership_id, analysis_id, status, after, limit)

    return list_page(ctx, params, "analysisLogExports", (membership_id, analysis_id, status), fetch,
                     render=export_summary)


# ------------------------------------------------------------------------------------------------ views


def export_view(row) -> dict:
    """The AnalysisLogExport output shape."""
    view = {"analysisLogExportId": row["id"], "analysisId": row["analysis_id"],
            "analysisType": row["analysis_type"], "membershipId": row["membership_id"], "status": row["status"],
            "resultConfiguration": row["doc"]["resultConfiguration"], "createTime": row["create_time"],
            "updateTime": row["update_time"]}
    if "error" in row["doc"]:
        view["error"] = row["doc"]["error"]
    return view


def export_summary(row) -> dict:
    """The AnalysisLogExportSummary output shape."""
    return {"analysisLogExportId": row.id, "analysisId": row.analysis_id, "analysisType": row.analysis_type,
            "status": row.status, "createTime": row.create_time}


# ------------------------------------------------------------------------------------------------ checks


def _exportable_query(conn: sa.Connection, ctx: RequestContext, membership, query_id: str):
    """The protected query, if this member may export its log now."""
    if membership["status"] != "ACTIVE":
        raise errors.access_denied(f"Membership {membership['id']} is {membership['status']}; only an ACTIVE member "
                                   "can export analysis logs.")
    collaboration_id = membership["collaboration_id"]
    member = collaboration_store.get_member(conn, collaboration_id, ctx.account_id)
    if member is None or ABILITY not in member["doc"]["abilities"]:
        raise errors.access_denied(f"The member {ctx.account_id} does not have the {ABILITY} ability in "
                                   f"collaboration {collaboration_id}.")
    query = query_store.get(conn, query_id)
    if query is None or query["collaboration_id"] != collaboration_id:
        raise errors.not_found(f"Protected query {query_id} not found.", query_id, "MEMBERSHIP")
    if ctx.account_id not in (query["account_id"], query["doc"].get("queryComputePayerAccountId")):
        raise errors.access_denied(f"Only the member who ran protected query {query_id} or paid for it can export "
                                   f"its analysis log; the {ABILITY} ability alone is not enough.")
    if query["status"] not in query_store.FINAL_STATUSES:
        raise _not_exportable(query_id, f"is {query['status']}; logs can be exported once it has ended")
    if query["runner"] is None:
        raise _not_exportable(query_id, f"ended {query['status']} before it started running, so it produced no "
                              "analysis log")
    if "differentialPrivacy" in query["doc"] or "dp" in query["spec"]:
        raise _not_exportable(query_id, "uses differential privacy; its analysis log cannot be exported")
    return query


def _not_exportable(query_id: str, why: str):
    return errors.validation(f"Protected query {query_id} {why}.", reason="INVALID_CONFIGURATION",
                             field="analysisId", field_message=why)


# ------------------------------------------------------------------------------------------------ the export


def _export(ctx: RequestContext, row: dict, query) -> None:
    """Write the log and record how it went (a conditional update: an export ends once)."""
    doc = dict(row["doc"])
    try:
        location = write_log_export(log_events(query), destination=_destination(ctx, row),
                                    collaboration_id=row["collaboration_id"], query_id=row["analysis_id"],
                                    export_id=row["id"])
        status, doc["location"] = "SUCCESS", location  # kept for operators; not part of the output shape
    except results.ResultWriteError as exc:
        status, doc["error"] = "FAILED", {"code": exc.code, "message": exc.message}
    except Exception:  # noqa: BLE001  (recorded as the export's failure; the details go to the server log only)
        log.exception("analysis log export %s failed unexpectedly", row["id"])
        status, doc["error"] = "FAILED", {"code": "INTERNAL_ERROR", "message": "The export failed because of an "
                                          f"internal error. The server log has the details under request ID "
                                          f"{ctx.request_id}."}
    with ctx.db.write() as conn:
        store.finish(conn, row["id"], status, ctx.now, doc)


def _destination(ctx: RequestContext, row: dict) -> results.ResultDestination:
    s3 = row["doc"]["resultConfiguration"]["outputConfiguration"]["s3"]
    if ctx.s3 is not None and ctx.s3.endpoint_url:
        return results.S3Destination(s3["bucket"], s3.get("keyPrefix", ""), ctx.s3)
    if ctx.results_dir is None:
        raise results.ResultWriteError("This server has no S3 endpoint and no results directory to write to.",
                                       "INTERNAL_ERROR")
    return results.LocalDestination(ctx.results_dir, s3["bucket"], s3.get("keyPrefix", ""))


def log_events(query) -> list[dict]:
    """The query's redacted log: what ran (its shape, not its values), on which relations, and how it ended."""
    doc, spec = query["doc"], query["spec"]
    accepted = {"event": "QueryAccepted", "time": _iso(query["create_time"]), "protectedQueryId": query["id"],
                "collaborationId": query["collaboration_id"], "queryText": redact_sql(spec.get("log_text") or ""),
                "relations": list(spec.get("table_names") or [])}
    template = (doc.get("sqlParameters") or {}).get("analysisTemplateArn")
    if template:
        accepted["analysisTemplateArn"] = template
    ended = {"event": "QueryEnded", "time": _iso(query["update_time"]), "protectedQueryId": query["id"],
             "status": query["status"],
             "totalDurationInMillis": (doc.get("statistics") or {}).get("totalDurationInMillis", 0)}
    if doc.get("error"):
        ended["error"] = {"code": doc["error"]["code"], "message": redact_message(doc["error"]["message"])}
    return [accepted, ended]


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="milliseconds")


# ------------------------------------------------------------------------------------------------ interruptions


def _interrupted(ctx: RequestContext, row) -> bool:
    return row["status"] == "IN_PROGRESS" and row["deadline"] <= ctx.now


def _close_interrupted(ctx: RequestContext, row):
    """An export its server stopped writing ends FAILED (retryable by starting another)."""
    with ctx.db.write() as conn:
        store.finish(conn, row["id"], "FAILED", ctx.now, dict(row["doc"], error=INTERRUPTED))
        return store.get(conn, row["membership_id"], row["id"])
