"""Protected queries: StartProtectedQuery, GetProtectedQuery, ListProtectedQueries, UpdateProtectedQuery.

Start checks the request as AWS does (an ACTIVE member with CAN_QUERY, the SQL or an analysis template of the
collaboration with typed parameters, who receives the results and where, who pays), then hands the SQL and the
collaboration's tables to the policy layer, which proves the query obeys every referenced table's analysis rule
before anything runs. A query the rules refuse is recorded FAILED with the policy's error code and message, and
nothing runs; an accepted one is stored SUBMITTED with the engine's SQL, and a runner (off the request path, in
this or another server process) runs it. `submit` is that one path for every query, whoever starts it:
PopulateIntermediateTable (services/intermediate_tables.py) goes through it too. What each choice rests on is in
docs/behaviour.md under "Protected queries".
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from opencleanrooms import catalog, policy
from opencleanrooms.privacy.costs import BudgetExhausted
from opencleanrooms.services import errors, locks, privacy_budgets, schemas
from opencleanrooms.services import protected_runs as runs
from opencleanrooms.services.analysis_rules import POLICY_MEMBERS
from opencleanrooms.services.configured_tables import reference_kind
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.registry import operation
from opencleanrooms.storage import analysis_templates as template_store
from opencleanrooms.storage import protected_queries as store
from opencleanrooms.storage import table_associations as association_store

log = logging.getLogger("opencleanrooms.queries")

ENGINES = ("duckdb", "spark")  # the dialects a plan is stored in, one per engine a runner may use
CLEAN_ROOMS_SQL_MAX_QUERY = 90 * 1024  # AWS: query text up to 90 KB on the Clean Rooms SQL engine
RECEIVE = "CAN_RECEIVE_RESULTS"


@operation("StartProtectedQuery")
def start_protected_query(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        caller = query_caller(conn, ctx, params["membershipIdentifier"], "start protected queries")
        sql, template, parameters = query_text(conn, params["sqlParameters"], caller.collaboration)
        outputs, report, receivers = _outputs(ctx, params, caller.collaboration, caller.members, caller.memberships)
        payer = query_payer(params, caller.members)
    doc = _query_doc(params, payer)
    row = submit(ctx, caller, Submission(sql=sql, template=template, parameters=parameters, outputs=outputs,
                                         report=report, receivers=receivers, doc=doc))
    return {"protectedQuery": query_view(row, caller.membership)}


@dataclass(frozen=True)
class ExtraTable:
    """A relation queries can read that is not a configured table association (an intermediate table): how the
    policy sees it, why it cannot be read now (None if it can), who may receive results of queries on it, and
    where its data is (a results location holding Parquet files). Why it cannot be read now, if it cannot, is
    `info.unavailable`; `constraints` and `dependencies` are what a population reading it inherits."""

    info: policy.TableInfo
    id: str
    allowed_receivers: tuple[str, ...] | None  # None: the relation restricts no receivers (an ID mapping table)
    location: str | None  # a results directory (file://...) of Parquet files, or one Parquet file
    constraints: Any = None
    dependencies: tuple = ()
    kind: str = "INTERMEDIATE_TABLE"  # its BaseTableDependencyType, for populations that read it


@dataclass
class Submission:
    """One query to start: its text and where its results go; `populate` (an intermediate table population)
    is told of the plan before the query is stored, and writes its own rows in the transaction that stores it."""

    sql: str
    template: Any
    parameters: dict
    outputs: list
    report: dict
    receivers: list
    doc: dict
    populate: Any = None  # .planned(plan, rows, extras) -> dict for the spec; .store(conn, row)


# Relations other families add to the queries of a collaboration: (conn, ctx, collaboration, names) ->
# {name: ExtraTable}, those among `names` (policy.ParsedQuery.names of the query) only, so that the cost of a start
# does not grow with what the collaboration stores. Filled by services.wiring.
EXTRA_TABLES: list[Callable] = []

Caller = runs.Caller  # the name other families (intermediate tables) use


def query_caller(conn: sa.Connection, ctx: RequestContext, membership_id: str, what: str) -> Caller:
    """An ACTIVE member with CAN_QUERY (AccessDeniedException otherwise)."""
    return runs.active_caller(conn, ctx, membership_id, "CAN_QUERY", what)


def submit(ctx: RequestContext, caller: Caller, job: Submission):
    """Plan the query against the collaboration's tables its text names and store it: SUBMITTED for a runner, or
    FAILED with the policy's refusal. The one path every protected query takes, whoever starts it.

    Only the relations among the names the text mentions (ParsedQuery.names, a superset of what planning resolves)
    are read, their catalog entries in one statement and their data's column types, so that a start costs the same
    however many tables the collaboration stores; a name that is no relation is refused by planning as before."""
    collaboration, memberships, membership_id = caller.collaboration, caller.memberships, caller.membership["id"]
    sql, template, doc = job.sql, job.template, job.doc
    if len(sql.encode()) > CLEAN_ROOMS_SQL_MAX_QUERY and collaboration["doc"].get("analyticsEngine") != "SPARK":
        raise errors.validation(f"The query text is {len(sql.encode())} bytes; the Clean Rooms SQL engine accepts "
                                f"at most {CLEAN_ROOMS_SQL_MAX_QUERY}.", field="sqlParameters.queryString")
    parsed = policy.ParsedQuery(sql)  # after the size check: parsing a text too long to run would be wasted
    with ctx.db.read() as conn:
        rows = association_store.schemas_by_names(conn, collaboration["id"], parsed.names)
        facts = schemas.CollaborationFacts.read(conn, collaboration)
        sources = schemas.catalog_sources(conn, rows)
        extras = {}
        for find in EXTRA_TABLES:
            extras.update({name: table for name, table in find(conn, ctx, collaboration, parsed.names).items()
                           if name not in sources})

    query_id = str(uuid.uuid4())
    doc["receivers"] = job.receivers
    error, spec = None, None
    try:
        tables = {name: _table_info(ctx, row, sources[name]) for name, row in rows.items()}
        tables.update({name: extra.info for name, extra in extras.items()})
        plan = policy.plan_query(policy.QueryRequest(
            sql=sql, parsed=parsed, runner_account_id=ctx.account_id, tables=tables,
            template_arn=template["arn"] if template else None,
            template_author_account_id=template["account_id"] if template else None,
            parameters=job.parameters, defer_output_controls=job.populate is not None))
        _check_tables_usable(plan, rows, sources, extras, facts, job.receivers)
        spec = _spec(plan, rows, sources, extras, job.outputs, job.report, sql)
        if job.populate is not None:
            spec["intermediate"] = job.populate.planned(plan, rows, extras)
        if plan.dp_aggregations:  # the runner adds the noise; the bounds are added once it has released them
            spec["dp"] = {"aggregations": [dict(entry) for entry in plan.dp_aggregations],
                          "release": dict(plan.dp_release)}
            doc["differentialPrivacy"] = {"sensitivityParameters": plan.dp_parameters()}
    except policy.QueryRejected as exc:
        error = {"code": exc.code, "message": exc.message, "retry": {"retryable": False}}
        spec = None
    except catalog.CatalogError as exc:
        log.warning("query %s: a table cannot be read: %s", query_id, exc)
        error = {"code": "INVALID_RESOURCE", "message": "A table the query reads cannot be read: its data is "
                 f"missing or unreadable. The server log has the details under request ID {ctx.request_id}.",
                 "retry": {"retryable": False}}
        spec = None
    status = "SUBMITTED" if error is None else "FAILED"
    if error is not None:
        doc["error"] = error
        doc["statistics"] = {"totalDurationInMillis": 0}
    row = {"id": query_id, "region": ctx.region, "account_id": ctx.account_id,
           "collaboration_id": collaboration["id"], "membership_id": membership_id, "status": status,
           "create_time": ctx.now, "update_time": ctx.now, "doc": doc, "spec": spec or {"log_text": sql}}
    viewers = [memberships[a]["id"] for a in [ctx.account_id, *job.receivers] if a in memberships]
    owners = [(rows[n]["account_id"] if n in rows else extras[n].info.owner_account_id)
              for n in (spec or {}).get("table_names", [])]
    logged = _logging_memberships(collaboration, memberships, ctx.account_id, owners)
    # The keys of what this write counts (concurrent queries of the membership and the account) and spends (the
    # collaboration's budgets), so that concurrent starts on PostgreSQL neither overrun a quota nor double-spend.
    keys = [locks.membership(membership_id), locks.account(ctx), locks.collaboration(collaboration["id"])]
    with ctx.db.write(locks=keys) as conn:
        if status == "SUBMITTED":
            _check_concurrency(ctx, conn, membership_id)
            try:  # paid in the transaction that accepts the query: no query without its payment, and vice versa
                paid = privacy_budgets.spend(conn, collaboration["id"], ctx.now, plan.dp_counts(),
                                             _budgeted(spec["table_names"], rows, extras))
                if "dp" in spec:  # the noise is drawn with the setting the query was priced with
                    spec["dp"]["usersNoisePerQuery"] = paid.users_noise_per_query
                    spec["dp"]["epsilon"] = f"{paid.epsilon.numerator}/{paid.epsilon.denominator}"
            except BudgetExhausted as exc:
                status = row["status"] = "FAILED"
                spec.pop("dp", None)
                doc.pop("differentialPrivacy", None)
                doc.update(error={"code": "INVALID_RESOURCE", "message": str(exc), "retry": {"retryable": False}},
                           statistics={"totalDurationInMillis": 0})
        if job.populate is not None:  # its version, in the transaction that stores the query
            job.populate.store(conn, row)
        store.insert(conn, row, viewers, logged)
    if status == "SUBMITTED" and ctx.wake_runner is not None:
        ctx.wake_runner()
    return row


@operation("GetProtectedQuery")
def get_protected_query(ctx: RequestContext, params: dict) -> dict:
    row, membership = runs.read(ctx, store, params["membershipIdentifier"], params["protectedQueryIdentifier"],
                                "query")
    return {"protectedQuery": query_view(row, membership)}


@operation("ListProtectedQueries")
def list_protected_queries(ctx: RequestContext, params: dict):
    return runs.list_runs(ctx, params, store, "protectedQueries", _summary)


@operation("UpdateProtectedQuery")
def update_protected_query(ctx: RequestContext, params: dict) -> dict:
    """Cancel: a query not started yet is CANCELLED at once; a running one becomes CANCELLING until its runner
    stops it; a finished one cannot be cancelled (ConflictException)."""
    row, membership = runs.cancel(ctx, store, params["membershipIdentifier"], params["protectedQueryIdentifier"],
                                  "query")
    return {"protectedQuery": query_view(row, membership)}


# ------------------------------------------------------------------------------------------------ views


def query_view(row, membership) -> dict:
    """The ProtectedQuery output shape."""
    return runs.view(row, membership)


def _summary(row, membership) -> dict:
    doc = row.doc
    summary = runs.summary(row, membership)
    if "queryComputePayerAccountId" in doc:
        summary["queryComputePayerAccountId"] = doc["queryComputePayerAccountId"]
    populated = (doc.get("resultConfiguration") or {}).get("outputConfiguration", {}).get("intermediateTable")
    if populated:
        summary["intermediateTableConfiguration"] = populated
    return summary


# ------------------------------------------------------------------------------------------------ checks


def query_text(conn: sa.Connection, sql_parameters: dict, collaboration):
    """The SQL to run, the template it comes from (or None) and its parameters (name -> (type, value))."""
    text, template_arn = sql_parameters.get("queryString"), sql_parameters.get("analysisTemplateArn")
    given = sql_parameters.get("parameters") or {}
    if (text is None) == (template_arn is None):
        raise errors.validation("sqlParameters needs either queryString or analysisTemplateArn, not both.",
                                field="sqlParameters", field_message="Give queryString or analysisTemplateArn")
    if text is not None:
        if given:
            raise errors.validation("sqlParameters.parameters can be given only with analysisTemplateArn.",
                                    field="sqlParameters.parameters")
        if not text.strip():
            raise errors.validation("sqlParameters.queryString must not be empty.", field="sqlParameters.queryString")
        return text, None, {}
    template = template_store.by_arns_in_collaboration(conn, collaboration["id"], [template_arn]).get(template_arn)
    if template is None:
        raise errors.validation(f"Analysis template {template_arn} is not an analysis template of collaboration "
                                f"{collaboration['id']}.", field="sqlParameters.analysisTemplateArn")
    if template["doc"]["format"] != "SQL":
        raise errors.validation(f"Analysis template {template_arn} is a {template['doc']['format']} template; "
                                "run it with StartProtectedJob.", field="sqlParameters.analysisTemplateArn")
    values = runs.template_parameters(template, given, "sqlParameters.parameters")
    return template["doc"]["source"]["text"], template, values


def _outputs(ctx: RequestContext, params: dict, collaboration, members: dict, memberships: dict):
    """Where results go: (outputs for the runner, the result as reported, receiver account ids)."""
    configuration = (params.get("resultConfiguration") or {}).get("outputConfiguration")
    if configuration is None:
        default = (memberships[ctx.account_id]["doc"].get("defaultResultConfiguration") or {})
        if RECEIVE not in members[ctx.account_id]["doc"]["abilities"] or "s3" not in default.get(
                "outputConfiguration", {}):
            raise errors.validation(
                "No resultConfiguration was given and the membership has no defaultResultConfiguration: give "
                "resultConfiguration (s3 for your own results, member for another member's).",
                field="resultConfiguration")
        configuration = {"s3": default["outputConfiguration"]["s3"]}
    if "intermediateTable" in configuration:
        raise errors.validation("The intermediateTable output configuration is set by PopulateIntermediateTable; "
                                "populate an intermediate table with that operation instead.",
                                field="resultConfiguration.outputConfiguration.intermediateTable")
    if "distribute" in configuration:
        if collaboration["doc"].get("analyticsEngine") != "SPARK":
            raise errors.validation("distribute output is supported only in collaborations whose analytics engine "
                                    "is SPARK.", field="resultConfiguration.outputConfiguration.distribute")
        locations = configuration["distribute"]["locations"]
        if sum("s3" in location for location in locations) > 1:
            raise errors.validation("distribute output takes at most one s3 location.",
                                    field="resultConfiguration.outputConfiguration.distribute.locations")
        own = [location for location in locations if location.get("member", {}).get("accountId") == ctx.account_id]
        if own:
            raise errors.validation("The query runner's own account cannot be a member location; use an s3 "
                                    "location.", field="resultConfiguration.outputConfiguration.distribute.locations")
        parts = locations
    else:
        parts = [configuration]
    outputs, receivers, report = [], [], {}
    for part in parts:
        if "s3" in part:
            _require_receiver(ctx.account_id, members)
            outputs.append(_s3_output(part["s3"], "s3", ctx.account_id))
            receivers.append(ctx.account_id)
            report["s3"] = True
        else:
            account = part["member"]["accountId"]
            _require_receiver(account, members)
            default = ((memberships.get(account) or {}).get("doc") or {}).get("defaultResultConfiguration") or {}
            if memberships.get(account) is None or memberships[account]["status"] != "ACTIVE" or "s3" not in default.get(
                    "outputConfiguration", {}):
                raise errors.validation(
                    f"Member {account} has not configured where it receives results (its membership's "
                    "defaultResultConfiguration).", field="resultConfiguration.outputConfiguration.member.accountId")
            outputs.append(_s3_output(default["outputConfiguration"]["s3"], "member", account))
            receivers.append(account)
            report.setdefault("members", []).append(account)
    return outputs, report | {"distribute": "distribute" in configuration}, list(dict.fromkeys(receivers))


def _require_receiver(account: str, members: dict) -> None:
    member = members.get(account)
    if member is None or member["status"] != "ACTIVE" or RECEIVE not in member["doc"]["abilities"]:
        raise errors.validation(f"Account {account} is not an active member of the collaboration with the "
                                f"{RECEIVE} ability.", field="resultConfiguration")


def _s3_output(s3: dict, kind: str, account: str) -> dict:
    return {"kind": kind, "account_id": account, "bucket": s3["bucket"], "key_prefix": s3.get("keyPrefix", ""),
            "format": s3.get("resultFormat", "CSV"), "single_file": bool(s3.get("singleFileOutput", False))}


def query_payer(params: dict, members: dict) -> str:
    """The member that pays for query compute: the one the collaboration makes responsible for it."""
    responsible = [a for a, m in members.items()
                   if ((m["doc"].get("paymentConfiguration") or {}).get("queryCompute") or {}).get("isResponsible")]
    given = params.get("queryComputePayerAccountId")
    if given is not None and given not in responsible:
        raise errors.validation(f"Account {given} is not configured to pay for query compute in this "
                                "collaboration.", field="queryComputePayerAccountId")
    payer = given or (responsible[0] if responsible else None)
    if payer is None or members[payer]["status"] != "ACTIVE":
        raise errors.validation("The member responsible for query compute costs is not an active member of the "
                                "collaboration; queries cannot run until it is.", field="queryComputePayerAccountId")
    return payer


def _table_info(ctx: RequestContext, row, source) -> policy.TableInfo:
    doc = row["table_doc"]
    types = schemas.column_types(ctx, doc["tableReference"], source) if row["table_rule_type"] else {}
    rule_type = row["table_rule_type"]
    rule = row["table_rule_policy"]["v1"][POLICY_MEMBERS[rule_type]] if rule_type else None
    return policy.TableInfo(name=row["name"], owner_account_id=row["account_id"],
                            columns=tuple((c, types.get(c, "string")) for c in doc["allowedColumns"]),
                            rule_type=rule_type, rule=rule)


def _check_tables_usable(plan, rows: dict, sources: dict, extras: dict, facts, receivers: list[str]) -> None:
    """Every table the query reads is ready for direct analysis in this collaboration, its data can be read by
    this server, and its collaboration analysis rule lets every receiver have the results."""
    for name in plan.tables:
        if name in extras:
            _check_extra_usable(name, extras[name], receivers)
            continue
        row = rows[name]
        kind = reference_kind(row["table_doc"]["tableReference"])
        if kind != "glue":
            raise policy.QueryRejected("INVALID_RESOURCE", f"Table `{name}` references a {kind} table, which this "
                                       "server cannot read; only AWS Glue (catalog) tables can be queried here.")
        if sources[name] is None:
            raise policy.QueryRejected("INVALID_RESOURCE", f"The data of table `{name}` is not in its owner's "
                                       "catalog on this server.")
        reasons = runs.not_ready(row, facts)
        if reasons is not None:
            raise policy.QueryRejected("INVALID_RESOURCE", f"Table `{name}` is not ready for direct analysis "
                                       f"({reasons})")
        refused = runs.refused_receivers(row, receivers)
        if refused:
            raise policy.QueryRejected(
                "RESOURCE_ACCESS_DENIED", f"The collaboration analysis rule of table `{name}` does not allow "
                f"{', '.join(refused)} to receive results of queries on it.")


def _check_extra_usable(name: str, extra: ExtraTable, receivers: list[str]) -> None:
    if extra.allowed_receivers is None:
        return
    refused = [account for account in receivers if account not in extra.allowed_receivers]
    if refused:
        raise policy.QueryRejected(
            "RESOURCE_ACCESS_DENIED", f"The analysis rule of intermediate table `{name}` and the constraints it "
            f"inherits from its base tables do not allow {', '.join(refused)} to receive results of queries on it.")


def _spec(plan, rows: dict, sources: dict, extras: dict, outputs: list, report: dict, sql: str) -> dict:
    """What a runner needs to run the accepted query."""
    tables = []
    for name in plan.tables:
        if name in extras:
            tables.append({"scan": plan.scan_names[name], "label": name, "location": extras[name].location,
                           "columns": [column for column, _ in extras[name].info.columns]})
            continue
        source = sources[name]
        tables.append({"scan": plan.scan_names[name], "label": name, "account_id": source.account_id,
                       "region": source.region, "database": source.database, "table": source.table,
                       "columns": list(rows[name]["table_doc"]["allowedColumns"])})
    return {"sql": {engine: plan.sql(engine) for engine in ENGINES}, "tables": tables,
            "table_names": list(plan.tables), "outputs": outputs, "report": report, "log_text": sql}


def _budgeted(names, rows: dict, extras: dict) -> list[str]:
    """The associations whose access budgets a query spends: those it reads, and those the intermediate tables it
    reads were populated from (directly or not), so that a budget cannot be side-stepped through one."""
    ids = [rows[name]["id"] for name in names if name in rows]
    ids += [d["id"] for name in names if name in extras for d in extras[name].dependencies if d["type"] == "TABLE"]
    return list(dict.fromkeys(ids))


def _query_doc(params: dict, payer: str) -> dict:
    doc = {"sqlParameters": params["sqlParameters"], "queryComputePayerAccountId": payer}
    if "resultConfiguration" in params:
        doc["resultConfiguration"] = params["resultConfiguration"]
    if "computeConfiguration" in params:
        doc["computeConfiguration"] = params["computeConfiguration"]
    return doc


def _logging_memberships(collaboration, memberships: dict, runner: str, owners: list[str]) -> list[str]:
    """Memberships that log this query: when the collaboration logs queries, the runner's and the contributing
    members' memberships whose own query logging is on."""
    if collaboration["doc"].get("queryLogStatus") != "ENABLED":
        return []
    accounts = dict.fromkeys([runner, *owners])
    return [memberships[a]["id"] for a in accounts
            if a in memberships and memberships[a]["doc"].get("queryLogStatus") == "ENABLED"]


def _check_concurrency(ctx: RequestContext, conn: sa.Connection, membership_id: str) -> None:
    ctx.quotas.check("concurrent_queries_per_membership", store.count_active(conn, membership_id=membership_id) + 1)
    ctx.quotas.check("concurrent_queries", store.count_active(conn, account_id=ctx.account_id) + 1)

