"""Intermediate tables: a stored query whose results the collaboration can query again.

PopulateIntermediateTable runs the stored SQL (or SQL analysis template) as a protected query through the one
path every query takes (protected_queries.submit: policy, budgets, runner), with the intermediate table as its
output: each population is a new version, tracked with GetProtectedQuery. Deferred controls of the base tables
(disallowed output columns, result receivers, additional analyses) are not enforced by the population; they are
captured, with their sources, as the version's inherited constraints, and enforced together with the table's own
CUSTOM rule when a later query reads the table by its name. A base table's owner can disallow the table (and, by
default, its descendants); deleting a base table (association or intermediate table) marks dependents
BASE_TABLE_REMOVED. What each choice rests on is in docs/behaviour.md under "Intermediate tables".
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from opencleanrooms import policy
from opencleanrooms.services import arns, errors, locks, protected_queries, table_associations
from opencleanrooms.services import intermediate_constraints as constraints
from opencleanrooms.services.access import owned_membership
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import analysis_templates as template_store
from opencleanrooms.storage import intermediate_tables as store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import DuplicateError
from opencleanrooms.storage.protected_queries import ACTIVE_STATUSES

RESOURCE_TYPE = "MEMBERSHIP"  # the model's ResourceType has no intermediate table; it lives in a membership
DEFAULT_RETENTION_DAYS = 30
DAY = 86400.0
RULE_TYPE = "CUSTOM"
_TABLE_ALIAS = re.compile(r"[a-zA-Z0-9_](([a-zA-Z0-9_ ]+-)*([a-zA-Z0-9_ ]+))?")  # the model's TableAlias
_DOC_FIELDS = ("description", "populationAnalysisConfiguration", "kmsKeyArn")


# ------------------------------------------------------------------------------------------------ cross-family


def membership_in_use(conn: sa.Connection, membership_id: str) -> str | None:
    count = store.count_for_membership(conn, membership_id)
    return f"it has {count} intermediate table{'s' if count != 1 else ''}" if count else None


def name_in_use(conn: sa.Connection, collaboration_id: str, name: str) -> bool:
    """Names are unique across the tables and intermediate tables of a collaboration."""
    return store.by_name(conn, collaboration_id, name) is not None


def base_table_removed(conn: sa.Connection, collaboration_id: str, table_id: str, name: str, now: float) -> None:
    """A table intermediate tables were populated from is gone: they (and theirs) can no longer be queried."""
    for row in store.dependents(conn, collaboration_id, table_id):
        if row["status"] is None:
            store.update(conn, row["id"], status="BASE_TABLE_REMOVED", update_time=now,
                         status_reason=f"Base table {name} was removed from the collaboration.")


def query_tables(conn: sa.Connection, ctx: RequestContext, collaboration, names) -> dict:
    """The intermediate tables among `names` (the lower-case relation names a query's text names) as relations the
    query can read (protected_queries). Two statements however many tables the collaboration stores: a table's
    dependencies are recorded in its own row, so the tables it was populated from need not be read."""
    rows = store.queryable_by_names(conn, collaboration["id"], names)
    versions = store.active_versions(conn, [row["id"] for row in rows])
    tables = {}
    for row in rows:
        active = versions.get(row["id"])
        columns = tuple((c, t) for c, t in (active["doc"].get("columns") or [])) if active else ()
        effective = constraints.effective(row, active)
        own = constraints.own_rule(row) or {}
        rule = {key: own[key] for key in ("allowedAnalyses", "allowedAnalysisProviders", "aggregationThresholds",
                                          "comparisonControls") if key in own}
        rule["disallowedOutputColumns"] = list(effective["disallowedOutputColumns"])
        info = policy.TableInfo(name=row["name_key"], owner_account_id=row["account_id"], columns=columns,
                                rule_type=RULE_TYPE if row["rule_policy"] else None, rule=rule,
                                unavailable=_unavailable(row, active, ctx.now))
        tables[row["name_key"]] = protected_queries.ExtraTable(
            info=info, id=row["id"], allowed_receivers=tuple(effective["allowedResultReceivers"] or ()),
            location=(active["doc"].get("location") if active else None), constraints=effective,
            dependencies=tuple(row["doc"].get("dependencies") or ()))
    return tables


class Relations:
    """Intermediate tables as schemas of their collaboration (type INTERMEDIATE_TABLE), for services/schemas.py
    through wiring: the tables of ACTIVE memberships, newest first. Rows come back as {"schema", "summary",
    "rule" (AnalysisRule, or None)}, their status as of `now`, the request's clock."""

    schema_type = "INTERMEDIATE_TABLE"

    @staticmethod
    def by_name(conn: sa.Connection, collaboration_id: str, name_key: str, *, now: float):
        row = store.schema_by_name(conn, collaboration_id, name_key)
        return None if row is None else _as_schema(row, store.active_version(conn, row["id"]), now)

    @staticmethod
    def by_names(conn: sa.Connection, collaboration_id: str, name_keys: list[str], *, now: float) -> dict:
        found = store.schemas_by_names(conn, collaboration_id, name_keys)
        versions = store.active_versions(conn, [row["id"] for row in found.values()])
        return {key: _as_schema(row, versions.get(row["id"]), now) for key, row in found.items()}

    @staticmethod
    def page(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int, *, now: float):
        rows, last = store.page_schemas(conn, collaboration_id, after, limit)
        versions = store.active_versions(conn, [row["id"] for row in rows])
        return [_as_schema(row, versions.get(row["id"]), now) for row in rows], last

    summary = staticmethod(lambda row: row["summary"])
    view = staticmethod(lambda row: row["schema"])
    analysis_rule = staticmethod(lambda row: row["rule"])


def _as_schema(row, active, now: float) -> dict:
    """The schema views of a table whose active version is `active` (or None), its status as of `now`."""
    own = constraints.own_rule(row)
    summary = {"name": row["name"], "type": "INTERMEDIATE_TABLE", "creatorAccountId": row["account_id"],
               "createTime": row["create_time"], "updateTime": row["update_time"],
               "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
               "analysisRuleTypes": [RULE_TYPE] if own else [], "analysisMethod": "DIRECT_QUERY"}
    overrides = row["doc"].get("columnTypes") or {}
    reason = _schema_reason(row, active, now)
    detail = {"status": "NOT_READY" if reason else "READY", "analysisType": "DIRECT_ANALYSIS"}
    if reason:
        detail["reasons"] = [reason]
    if own:
        detail["analysisRuleType"] = RULE_TYPE
    schema = dict(summary, columns=[{"name": c, "type": overrides.get(c, t)}
                                    for c, t in (active["doc"].get("columns") or [] if active else [])],
                  partitionKeys=[], description=row["doc"].get("description", ""), schemaStatusDetails=[detail],
                  schemaTypeProperties={"intermediateTable": {"intermediateTableId": row["id"]}})
    rule = None
    if own:
        effective = constraints.effective(row, active)
        consolidated = dict(own, disallowedOutputColumns=effective["disallowedOutputColumns"])
        for key in ("allowedResultReceivers", "additionalAnalyses", "allowedAdditionalAnalyses"):
            if effective[key] is not None:
                consolidated[key] = effective[key]
        rule = {"collaborationId": row["collaboration_id"], "type": RULE_TYPE, "name": row["name"],
                "createTime": row["rule_create_time"], "updateTime": row["rule_update_time"],
                "policy": {"v1": {"custom": own}}, "consolidatedPolicy": {"v1": {"custom": consolidated}}}
    return {"schema": schema, "summary": summary, "rule": rule}


def _schema_reason(row, active, now: float) -> dict | None:
    if row["status"] == "DISALLOWED_BY_DATA_PROVIDER":
        code = "INTERMEDIATE_TABLE_DISALLOWED_BY_DATA_PROVIDER"
    elif row["status"] == "BASE_TABLE_REMOVED":
        code = "INTERMEDIATE_TABLE_BASE_TABLE_REMOVED"
    elif active is None:
        code = "INTERMEDIATE_TABLE_NOT_POPULATED"
    elif active["expiration_time"] <= now:
        code = "INTERMEDIATE_TABLE_RETENTION_PERIOD_EXPIRED"
    elif row["rule_policy"] is None:
        code = "INTERMEDIATE_TABLE_ANALYSIS_RULE_MISSING"
    else:
        return None
    return {"code": code, "message": f"The intermediate table cannot be queried: {_unavailable(row, active, now)}."}


# ------------------------------------------------------------------------------------------------ operations


@operation("CreateIntermediateTable")
def create_intermediate_table(ctx: RequestContext, params: dict) -> dict:
    membership_id, name = params["membershipIdentifier"], params["name"]
    if not _TABLE_ALIAS.fullmatch(name) or len(name) > 100:
        raise errors.validation("The name of an intermediate table is the name queries and schemas use: letters, "
                                "digits, underscores, spaces and hyphens (not first or last).", field="name")
    check_new_resource_tags(params.get("tags") or {})
    configuration = params["populationAnalysisConfiguration"]
    table_id = arns.new_id()
    arn = arns.membership_resource_arn(ctx.region, ctx.account_id, membership_id, "intermediatetable", table_id)
    try:
        with ctx.db.write(locks=[locks.membership(membership_id)]) as conn:
            caller = protected_queries.query_caller(conn, ctx, membership_id, "create intermediate tables")
            collaboration_id = caller.collaboration["id"]
            _check_population(conn, configuration, collaboration_id)
            if table_associations.relation_name_taken(conn, collaboration_id, name):
                raise _name_taken(name, collaboration_id)
            doc = {key: params[key] for key in _DOC_FIELDS if key in params}
            doc["retentionInDays"] = params.get("retentionInDays") or DEFAULT_RETENTION_DAYS
            store.insert(conn, {
                "id": table_id, "region": ctx.region, "account_id": ctx.account_id,
                "collaboration_id": collaboration_id, "membership_id": membership_id, "name": name,
                "name_key": name.lower(), "arn": arn, "create_time": ctx.now, "update_time": ctx.now, "doc": doc})
            tag_store.put(conn, arn, params.get("tags") or {})
            view = _view(conn, ctx, store.by_id(conn, table_id), caller.membership)
    except DuplicateError:  # a concurrent create took the name (only where writers do not queue)
        raise _name_taken(name, "this collaboration") from None
    return {"intermediateTable": view}


@operation("GetIntermediateTable")
def get_intermediate_table(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        membership, row = _table(conn, ctx, params)
        return {"intermediateTable": _view(conn, ctx, row, membership)}


@operation("UpdateIntermediateTable")
def update_intermediate_table(ctx: RequestContext, params: dict) -> dict:
    """Description and KMS key, and the reported type of existing columns of the populated schema."""
    with ctx.db.write(locks=[locks.membership(params["membershipIdentifier"])]) as conn:
        membership, row = _table(conn, ctx, params)
        doc = dict(row["doc"])
        doc.update({key: params[key] for key in ("description", "kmsKeyArn") if key in params})
        if "columns" in params:
            active = store.active_version(conn, row["id"])
            known = {c for c, _ in (active["doc"].get("columns") or [])} if active else set()
            unknown = sorted({c["name"] for c in params["columns"]} - known)
            if unknown:
                raise errors.validation(f"Only the types of existing columns can be updated; the intermediate table "
                                        f"has no column(s) {', '.join(unknown)}"
                                        f"{'' if active else ' (it has not been populated yet)'}.", field="columns")
            doc["columnTypes"] = dict(doc.get("columnTypes") or {}) | {c["name"]: c["type"] for c in params["columns"]}
        store.update(conn, row["id"], doc=doc, update_time=ctx.now)
        return {"intermediateTable": _view(conn, ctx, store.by_id(conn, row["id"]), membership)}


@operation("DeleteIntermediateTable")
def delete_intermediate_table(ctx: RequestContext, params: dict) -> None:
    """Idempotent: deleting a table that is not there succeeds. Tables populated from it become
    BASE_TABLE_REMOVED."""
    membership_id, table_id = params["membershipIdentifier"], params["intermediateTableIdentifier"]
    with ctx.db.write(locks=[locks.membership(membership_id)]) as conn:
        owned_membership(conn, ctx, membership_id)
        row = store.get(conn, membership_id, table_id)
        if row is None:
            return None
        store.delete(conn, table_id, ctx.now)
        tag_store.remove(conn, row["arn"])
        base_table_removed(conn, row["collaboration_id"], table_id, row["name"], ctx.now)
    return None


@operation("ListIntermediateTables")
def list_intermediate_tables(ctx: RequestContext, params: dict):
    membership_id = params["membershipIdentifier"]
    with ctx.db.read() as conn:
        membership = owned_membership(conn, ctx, membership_id)

    def fetch(conn, after, limit):
        rows, last = store.page_for_membership(conn, membership_id, after, limit)
        return [_summary(conn, ctx, row._mapping, membership) for row in rows], last

    return list_page(ctx, params, "intermediateTableSummaries", (membership_id,), fetch, render=lambda s: s)


@operation("ListIntermediateTableVersions")
def list_intermediate_table_versions(ctx: RequestContext, params: dict):
    membership_id, table_id = params["membershipIdentifier"], params["intermediateTableIdentifier"]
    with ctx.db.read() as conn:
        _table(conn, ctx, params)

    def fetch(conn, after, limit):
        return store.page_versions(conn, table_id, after, limit)

    return list_page(ctx, params, "intermediateTableVersionSummaries", (membership_id, table_id), fetch,
                     render=lambda row: _version_summary(row._mapping, ctx.now))


@operation("PopulateIntermediateTable")
def populate_intermediate_table(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]
    with ctx.db.read() as conn:
        caller = protected_queries.query_caller(conn, ctx, membership_id, "populate intermediate tables")
        row = _require(conn, membership_id, params["intermediateTableIdentifier"])
        _check_populatable(conn, row)
        sql_parameters = dict(row["doc"]["populationAnalysisConfiguration"].get("sqlParameters") or {})
        if params.get("parameters"):
            if "analysisTemplateArn" not in sql_parameters:
                raise errors.validation("parameters can be given only when the intermediate table is populated by an "
                                        "analysis template.", field="parameters")
            sql_parameters["parameters"] = params["parameters"]
        sql, template, values = protected_queries.query_text(conn, sql_parameters, caller.collaboration)
        payer = protected_queries.query_payer(
            {"queryComputePayerAccountId": params.get("analysisPayerAccountId")}, caller.members)
    compute = params.get("computeConfiguration") or {}
    if "jobComputeConfiguration" in compute:
        raise errors.validation("jobComputeConfiguration applies to PySpark jobs; this intermediate table is "
                                "populated by SQL.", field="computeConfiguration")
    target = {"id": row["id"], "arn": row["arn"], "name": row["name"]}
    doc = {"sqlParameters": sql_parameters, "queryComputePayerAccountId": payer,
           "resultConfiguration": {"outputConfiguration": {"intermediateTable": target}}}
    if "queryComputeConfiguration" in compute:
        doc["computeConfiguration"] = {"worker": compute["queryComputeConfiguration"]}
    population = _Population(ctx, row, params.get("parameters") or {})
    protected_queries.submit(ctx, caller, protected_queries.Submission(
        sql=sql, template=template, parameters=values, doc=doc, receivers=[], report={"intermediate": True},
        outputs=[{"kind": "intermediate", "account_id": ctx.account_id, "table_id": row["id"]}],
        populate=population))
    return {"analysisId": population.analysis_id, "analysisType": "QUERY", "versionId": population.version_id}


@operation("DisallowIntermediateTable")
def disallow_intermediate_table(ctx: RequestContext, params: dict) -> dict:
    """Called by a data provider whose table the intermediate table was populated from (directly or through
    another intermediate table); by default its descendants are disallowed too."""
    membership_id, name = params["membershipIdentifier"], params["intermediateTableName"]
    with ctx.db.write(locks=[locks.membership(membership_id)]) as conn:
        membership = owned_membership(conn, ctx, membership_id)
        row = store.by_name(conn, membership["collaboration_id"], name)
        if row is None:
            raise errors.not_found(f"Intermediate table {name} not found in collaboration "
                                   f"{membership['collaboration_id']}.", name, RESOURCE_TYPE)
        mine = [d for d in row["doc"].get("dependencies") or []
                if d["type"] == "TABLE" and d["creatorAccountId"] == ctx.account_id]
        if not mine:
            raise errors.access_denied(f"Intermediate table {name} was not populated from a table of account "
                                       f"{ctx.account_id}; only the owners of its base tables can disallow it.")
        reason = f"Disallowed by the data provider {ctx.account_id} (base table {mine[0]['name']})."
        targets = [row]
        if params.get("includeDescendants", True):
            targets += store.dependents(conn, row["collaboration_id"], row["id"])
        for target in targets:
            if target["status"] is None:
                store.update(conn, target["id"], status="DISALLOWED_BY_DATA_PROVIDER", status_reason=reason,
                             update_time=ctx.now)
    return {}


# ------------------------------------------------------------------------------------------------ analysis rule


@operation("CreateIntermediateTableAnalysisRule")
def create_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.write(locks=[locks.membership(params["membershipIdentifier"])]) as conn:
        _, row = _table(conn, ctx, params)
        rule_type = _rule_type(params)
        if row["rule_policy"] is not None:
            raise errors.conflict(f"Intermediate table {row['id']} already has a {RULE_TYPE} analysis rule.",
                                  row["id"], RESOURCE_TYPE, "ALREADY_EXISTS")
        constraints.check_rule(row, store.active_version(conn, row["id"]), params["analysisRulePolicy"])
        store.update(conn, row["id"], rule_policy=params["analysisRulePolicy"], rule_create_time=ctx.now,
                     rule_update_time=ctx.now, update_time=ctx.now)
        return {"analysisRule": _rule_view(store.by_id(conn, row["id"]), rule_type)}


@operation("GetIntermediateTableAnalysisRule")
def get_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        _, row = _table(conn, ctx, params)
        return {"analysisRule": _rule_view(_with_rule(row), _rule_type(params))}


@operation("UpdateIntermediateTableAnalysisRule")
def update_analysis_rule(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.write(locks=[locks.membership(params["membershipIdentifier"])]) as conn:
        _, row = _table(conn, ctx, params)
        rule_type = _rule_type(params)
        _with_rule(row)
        constraints.check_rule(row, store.active_version(conn, row["id"]), params["analysisRulePolicy"])
        store.update(conn, row["id"], rule_policy=params["analysisRulePolicy"], rule_update_time=ctx.now,
                     update_time=ctx.now)
        return {"analysisRule": _rule_view(store.by_id(conn, row["id"]), rule_type)}


@operation("DeleteIntermediateTableAnalysisRule")
def delete_analysis_rule(ctx: RequestContext, params: dict) -> None:
    """The table cannot be queried until a new rule is attached."""
    with ctx.db.write(locks=[locks.membership(params["membershipIdentifier"])]) as conn:
        _, row = _table(conn, ctx, params)
        _rule_type(params)
        _with_rule(row)
        store.update(conn, row["id"], rule_policy=None, rule_create_time=None, rule_update_time=None,
                     update_time=ctx.now)
    return None


# ------------------------------------------------------------------------------------------------ population


class _Population:
    """The population hook protected_queries.submit calls: told of the plan, it records the version's columns,
    dependencies and inherited constraints; then it stores the version with the query, in one transaction."""

    def __init__(self, ctx: RequestContext, row, parameters: dict) -> None:
        self.ctx, self.row, self.parameters = ctx, row, parameters
        self.version_id = arns.new_id()
        self.analysis_id = None
        self.dependencies: list = []
        self.inherited: dict = {}

    def planned(self, plan, rows: dict, extras: dict) -> dict:
        columns = [c.lower() for c in plan.output_columns]
        bad = [c for c in columns if not constraints.column_name_ok(c)]
        if bad or len(set(columns)) != len(columns):
            raise policy.QueryRejected(
                "MALFORMED_QUERY", "The columns of an intermediate table must have distinct names of lower-case "
                "letters, digits, underscores, spaces and hyphens; name every output column with an alias "
                f"(offending: {', '.join(sorted(set(bad)) or sorted({c for c in columns if columns.count(c) > 1}))}).")
        self.dependencies = constraints.dependencies(plan.tables, rows, extras)
        if any(d["id"] == self.row["id"] for d in self.dependencies):
            raise policy.QueryRejected("INVALID_RESOURCE", f"Intermediate table `{self.row['name']}` cannot be "
                                       "populated from itself or from tables populated from it.")
        self.inherited = constraints.inherit(plan, rows, extras)
        return {"table_id": self.row["id"], "version_id": self.version_id, "columns": columns}

    def store(self, conn: sa.Connection, query_row: dict) -> None:
        row = store.by_id(conn, self.row["id"])
        if row is None:
            raise errors.not_found(f"Intermediate table {self.row['id']} not found.", self.row["id"], RESOURCE_TYPE)
        _check_populatable(conn, row)
        self.analysis_id = query_row["id"]
        doc = {"parameters": self.parameters, "inheritedConstraints": self.inherited,
               "dependencies": self.dependencies}
        if row["doc"].get("kmsKeyArn"):
            doc["kmsKeyArn"] = row["doc"]["kmsKeyArn"]
        store.insert_version(conn, {
            "id": self.version_id, "table_id": row["id"], "analysis_id": query_row["id"],
            "create_time": self.ctx.now, "doc": doc,
            "expiration_time": self.ctx.now + row["doc"]["retentionInDays"] * DAY})
        if query_row["status"] != "FAILED":  # a refused population leaves the table's lineage as it was
            store.update(conn, row["id"], doc=dict(row["doc"], dependencies=self.dependencies),
                         update_time=self.ctx.now)
            store.set_dependencies(conn, row["id"], self.dependencies)


def _check_populatable(conn: sa.Connection, row) -> None:
    if row["status"] is not None:
        raise errors.conflict(f"Intermediate table {row['id']} is {row['status']}: {row['status_reason']}",
                              row["id"], RESOURCE_TYPE, "INVALID_STATE")
    if store.populating(conn, row["id"]):
        raise errors.conflict(f"Intermediate table {row['id']} is being populated; wait for that population to end.",
                              row["id"], RESOURCE_TYPE, "INVALID_STATE")


# ------------------------------------------------------------------------------------------------ rule checks


def _rule_type(params: dict) -> str:
    rule_type = params["analysisRuleType"]
    if rule_type != RULE_TYPE:  # the model's enum has only CUSTOM; kept for when it grows
        raise errors.validation(f"Intermediate tables support only the {RULE_TYPE} analysis rule.",
                                field="analysisRuleType")
    return rule_type


def _with_rule(row):
    if row["rule_policy"] is None:
        raise errors.not_found(f"Intermediate table {row['id']} has no {RULE_TYPE} analysis rule.", row["id"],
                               RESOURCE_TYPE)
    return row


# ------------------------------------------------------------------------------------------------ reads & views


def _table(conn: sa.Connection, ctx: RequestContext, params: dict):
    membership = owned_membership(conn, ctx, params["membershipIdentifier"])
    return membership, _require(conn, membership["id"], params["intermediateTableIdentifier"])


def _require(conn: sa.Connection, membership_id: str, table_id: str):
    row = store.get(conn, membership_id, table_id)
    if row is None:
        raise errors.not_found(f"Intermediate table {table_id} not found.", table_id, RESOURCE_TYPE)
    return row


def _check_population(conn: sa.Connection, configuration: dict, collaboration_id: str) -> None:
    if "jobParameters" in configuration:
        raise errors.validation("Intermediate tables populated by PySpark jobs are not supported by this server; "
                                "use sqlParameters.", field="populationAnalysisConfiguration.jobParameters")
    sql = configuration.get("sqlParameters") or {}
    text, template_arn = sql.get("queryString"), sql.get("analysisTemplateArn")
    if (text is None) == (template_arn is None):
        raise errors.validation("populationAnalysisConfiguration.sqlParameters needs either queryString or "
                                "analysisTemplateArn, not both.",
                                field="populationAnalysisConfiguration.sqlParameters")
    if text is not None and not text.strip():
        raise errors.validation("The population query must not be empty.",
                                field="populationAnalysisConfiguration.sqlParameters.queryString")
    if template_arn is not None:
        template = template_store.by_arns_in_collaboration(conn, collaboration_id, [template_arn]).get(template_arn)
        if template is None or template["doc"]["format"] != "SQL":
            raise errors.validation(f"{template_arn} is not a SQL analysis template of collaboration "
                                    f"{collaboration_id}.",
                                    field="populationAnalysisConfiguration.sqlParameters.analysisTemplateArn")


def _name_taken(name: str, collaboration_id: str):
    return errors.conflict(f"A table or intermediate table named {name} already exists in collaboration "
                           f"{collaboration_id}; names are unique within a collaboration.", name, RESOURCE_TYPE,
                           "ALREADY_EXISTS")


def _unavailable(row, active, now: float) -> str | None:
    """Why queries cannot read the table now, or None."""
    if row["status"] is not None:
        return f"it is {row['status']} ({row['status_reason']})"
    if active is None:
        return "it has not been populated successfully yet"
    if active["expiration_time"] <= now:
        return (f"its data expired after its retention period of {row['doc']['retentionInDays']} days; populate it "
                "again")
    if row["rule_policy"] is None:
        return "it has no analysis rule"
    return None


def _status(row, latest, active, now: float) -> tuple[str, str | None]:
    if row["status"] is not None:
        return row["status"], row["status_reason"]
    if latest is None:
        return "CREATED", None
    if latest["query_status"] in ACTIVE_STATUSES:
        return "POPULATE_STARTED", None
    if latest["populated_time"] is None:
        return "POPULATE_FAILED", f"Population {latest['analysis_id']} ended {latest['query_status']}."
    if latest["expiration_time"] <= now:
        return "RETENTION_PERIOD_EXPIRED", "The data of the latest version has expired; populate the table again."
    return "POPULATE_SUCCESS", None


def _version_status(version, now: float) -> str:
    if version["query_status"] in ACTIVE_STATUSES:
        return "POPULATE_STARTED"
    if version["populated_time"] is None:
        return "POPULATE_FAILED"
    return "RETENTION_PERIOD_EXPIRED" if version["expiration_time"] <= now else "POPULATE_SUCCESS"


def _summary(conn: sa.Connection, ctx: RequestContext, row, membership) -> dict:
    latest = store.latest_version(conn, row["id"])
    active = store.active_version(conn, row["id"])
    view = _base_view(row, membership)
    view["status"] = _status(row, latest, active, ctx.now)[0]
    view["retentionInDays"] = row["doc"]["retentionInDays"]
    if row["rule_policy"]:
        view["analysisRuleTypes"] = [RULE_TYPE]
    return view


def _base_view(row, membership) -> dict:
    view = {"id": row["id"], "arn": row["arn"], "name": row["name"], "membershipArn": membership["arn"],
            "membershipId": row["membership_id"], "collaborationArn": membership["collaboration_arn"],
            "collaborationId": row["collaboration_id"], "createTime": row["create_time"],
            "updateTime": row["update_time"]}
    if "description" in row["doc"]:
        view["description"] = row["doc"]["description"]
    return view


def _view(conn: sa.Connection, ctx: RequestContext, row, membership) -> dict:
    """The IntermediateTable output shape."""
    latest = store.latest_version(conn, row["id"])
    active = store.active_version(conn, row["id"])
    view = _base_view(row, membership)
    status, reason = _status(row, latest, active, ctx.now)
    view.update(status=status, populationAnalysisConfiguration=row["doc"]["populationAnalysisConfiguration"],
                retentionInDays=row["doc"]["retentionInDays"])
    if reason:
        view["statusReason"] = reason
    if "kmsKeyArn" in row["doc"]:
        view["kmsKeyArn"] = row["doc"]["kmsKeyArn"]
    if row["rule_policy"]:
        view["analysisRuleTypes"] = [RULE_TYPE]
    if row["doc"].get("dependencies"):
        view["tableDependencies"] = row["doc"]["dependencies"]
    children = store.dependents(conn, row["collaboration_id"], row["id"], direct=True)
    if children:
        view["childResources"] = [{"resourceId": c["id"], "resourceType": "INTERMEDIATE_TABLE",
                                   "resourceName": c["name"], "ownerAccountId": c["account_id"],
                                   "resourceStatus": _status(c, store.latest_version(conn, c["id"]),
                                                             store.active_version(conn, c["id"]), ctx.now)[0]}
                                  for c in children]
    if active is not None:
        version = {"versionId": active["id"], "analysisId": active["analysis_id"], "analysisType": "QUERY",
                   "inheritedConstraints": active["doc"].get("inheritedConstraints") or {},
                   "expirationTime": active["expiration_time"]}
        if active["doc"].get("parameters"):
            version["parameters"] = active["doc"]["parameters"]
        if active["doc"].get("kmsKeyArn"):
            version["kmsKeyArn"] = active["doc"]["kmsKeyArn"]
        view["intermediateTableVersion"] = version
        overrides = row["doc"].get("columnTypes") or {}
        view["schema"] = {"columns": [{"name": c, "type": overrides.get(c, t)}
                                      for c, t in active["doc"].get("columns") or []]}
    return view


def _version_summary(version, now: float) -> dict:
    summary = {"versionId": version["id"], "tableId": version["table_id"], "createTime": version["create_time"],
               "analysisId": version["analysis_id"], "status": _version_status(version, now),
               "analysisType": "QUERY", "expirationTime": version["expiration_time"]}
    if version["doc"].get("kmsKeyArn"):
        summary["kmsKeyArn"] = version["doc"]["kmsKeyArn"]
    return summary


def _rule_view(row, rule_type: str) -> dict:
    return {"intermediateTableIdentifier": row["id"], "intermediateTableArn": row["arn"],
            "analysisRulePolicy": row["rule_policy"], "analysisRuleType": rule_type,
            "createTime": row["rule_create_time"], "updateTime": row["rule_update_time"]}
