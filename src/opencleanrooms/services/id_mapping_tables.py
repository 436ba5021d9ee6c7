"""ID mapping tables: the mapping of a SOURCE ID namespace association's IDs to a TARGET one's, made by an AWS
Entity Resolution ID mapping workflow, and a relation of the collaboration (schema type ID_MAPPING_TABLE, with the
managed ID_MAPPING_TABLE analysis rule).

Membership-scoped like ID namespace associations (only the owner reads and changes them; an ACTIVE membership is
needed to create and to populate). The workflow ARN must be the caller's own and defined in the local catalog
(catalog/entity_resolution.py); its source and target namespaces must be associated with the collaboration.

PopulateIdMappingTable runs a rule-based exact-match mapping (engines/id_mapping.py) over the two namespaces'
catalog tables, to completion, before it answers; the job is followed through the schema's status
(ID_MAPPING_TABLE_NOT_POPULATED until a job succeeds; its message says how the last job went). Where a namespace
lacks what the mapping needs, it fails with ValidationException naming what is missing. See docs/id-mapping.md.
"""

from __future__ import annotations

import os
import shutil

import duckdb
import sqlalchemy as sa

from opencleanrooms import catalog, policy
from opencleanrooms.catalog import entity_resolution
from opencleanrooms.engines import id_mapping
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import arns, errors, locks, protected_queries, table_associations
from opencleanrooms.services.access import owned_membership
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.id_namespace_associations import allows_dimension
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import id_mappings as store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import DuplicateError

RESOURCE_TYPE = "MEMBERSHIP"  # the model's ResourceType has no ID mapping table
KIND = "idmappingtable"
RULE_TYPE = "ID_MAPPING_TABLE"
COLUMNS = (id_mapping.SOURCE_COLUMN, id_mapping.TARGET_COLUMN)
STALE_JOB_SECONDS = 3600  # a RUNNING job older than this died with its process; another may start
# What follows a table's deletion, (conn, collaboration_id, table_id, name, now) -> None (intermediate tables
# populated from it are BASE_TABLE_REMOVED). Filled by services.wiring.
DELETE_HOOKS: list = []


def membership_in_use(conn: sa.Connection, membership_id: str) -> str | None:
    count = store.count_tables(conn, membership_id)
    return f"{count} ID mapping table{'' if count == 1 else 's'}" if count else None


def owns_table(conn: sa.Connection, ctx: RequestContext, ids: tuple[str, ...]) -> bool:
    """`membership/<membership id>/idmappingtable/<id>` ARNs, for their owner."""
    return (len(ids) == 3 and ids[1] == KIND
            and store.get_owned_table(conn, ctx.region, ctx.account_id, ids[0], ids[2]) is not None)


def name_in_use(conn: sa.Connection, collaboration_id: str, name: str) -> bool:
    """Relation names are shared with configured table associations (services.wiring)."""
    return store.name_taken(conn, collaboration_id, name.lower())


@operation("CreateIdMappingTable")
def create_table(ctx: RequestContext, params: dict) -> dict:
    membership_id, name = params["membershipIdentifier"], params["name"]
    config = params["inputReferenceConfig"]
    workflow_arn = config["inputReferenceArn"]
    check_new_resource_tags(params.get("tags") or {})
    parts = workflow_arn.split(":")
    if parts[4] != ctx.account_id or parts[3] != ctx.region:
        raise errors.validation(
            f"{workflow_arn} is not an ID mapping workflow of account {ctx.account_id} in {ctx.region}; an ID "
            "mapping table is made from one of the caller's own workflows.", reason="INVALID_CONFIGURATION",
            field="inputReferenceConfig.inputReferenceArn", field_message="Not a workflow the caller owns")
    table_id = arns.new_id()
    arn = arns.membership_resource_arn(ctx.region, ctx.account_id, membership_id, KIND, table_id)
    try:
        with ctx.db.write(locks=locks.membership_keys(ctx, membership_id)) as conn:
            membership = _membership(conn, ctx, membership_id, active=True)
            collaboration_id = membership["collaboration_id"]
            workflow = entity_resolution.get_workflow(conn, workflow_arn)
            if workflow is None:
                raise errors.validation(
                    f"ID mapping workflow {workflow_arn} does not exist. (OpenCleanRooms resolves Entity Resolution "
                    "ID mapping workflows through its catalog: add an [[id_mapping_workflows]] entry with this ARN "
                    "and import it with `opencleanrooms catalog import`.)", reason="INVALID_CONFIGURATION",
                    field="inputReferenceConfig.inputReferenceArn", field_message="Unknown ID mapping workflow")
            inputs = [_input(conn, collaboration_id, workflow.source_arn, "SOURCE"),
                      _input(conn, collaboration_id, workflow.target_arn, "TARGET")]
            if table_associations.relation_name_taken(conn, collaboration_id, name):
                raise _name_taken(name, collaboration_id)
            ctx.quotas.check("id_mapping_tables", store.count_tables(conn, membership_id) + 1)
            doc = {"inputReferenceConfig": {"inputReferenceArn": workflow_arn,
                                            "manageResourcePolicies": config["manageResourcePolicies"]},
                   "inputReferenceProperties": {"idMappingTableInputSource": [
                       {"idNamespaceAssociationId": row["id"], "type": kind} for row, kind in inputs]}}
            for key in ("description", "kmsKeyArn"):
                if key in params:
                    doc[key] = params[key]
            store.insert_table(conn, {
                "id": table_id, "region": ctx.region, "account_id": ctx.account_id,
                "collaboration_id": collaboration_id, "membership_id": membership_id, "name": name,
                "name_key": name.lower(), "arn": arn, "source_association_id": inputs[0][0]["id"],
                "target_association_id": inputs[1][0]["id"], "create_time": ctx.now, "update_time": ctx.now,
                "doc": doc})
            tag_store.put(conn, arn, params.get("tags") or {})
            row = store.get_table(conn, membership_id, table_id)
    except DuplicateError:  # a concurrent create took the name (only where writers do not queue)
        raise _name_taken(name, None) from None
    return {"idMappingTable": table_view(row)}


@operation("GetIdMappingTable")
def get_table(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        row = _table(conn, ctx, params["membershipIdentifier"], params["idMappingTableIdentifier"])
    return {"idMappingTable": table_view(row)}


@operation("UpdateIdMappingTable")
def update_table(ctx: RequestContext, params: dict) -> dict:
    membership_id, table_id = params["membershipIdentifier"], params["idMappingTableIdentifier"]
    with ctx.db.write() as conn:  # any membership the caller still has: the operation declares no ConflictException
        row = _table(conn, ctx, membership_id, table_id)
        doc = dict(row["doc"])
        for key in ("description", "kmsKeyArn"):
            if key in params:
                doc[key] = params[key]
        store.update_table(conn, table_id, doc=doc, update_time=ctx.now)
        row = store.get_table(conn, membership_id, table_id)
    return {"idMappingTable": table_view(row)}


@operation("DeleteIdMappingTable")
def delete_table(ctx: RequestContext, params: dict) -> None:
    membership_id, table_id = params["membershipIdentifier"], params["idMappingTableIdentifier"]
    with ctx.db.write() as conn:
        row = _table(conn, ctx, membership_id, table_id)
        store.delete_table(conn, table_id)
        tag_store.remove(conn, row["arn"])
        for hook in DELETE_HOOKS:
            hook(conn, row["collaboration_id"], table_id, row["name"], ctx.now)
    if ctx.id_mapping_dir:  # "Deleting a mapping table permanently removes any populated data" (AWS)
        shutil.rmtree(_table_dir(ctx, row), ignore_errors=True)


@operation("ListIdMappingTables")
def list_tables(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]

    def fetch(conn, after, limit):
        _membership(conn, ctx, membership_id)
        return store.page_tables(conn, membership_id, after, limit)

    return list_page(ctx, params, "idMappingTableSummaries", (membership_id,), fetch, table_summary)


@operation("PopulateIdMappingTable")
def populate_table(ctx: RequestContext, params: dict) -> dict:
    membership_id, table_id = params["membershipIdentifier"], params["idMappingTableIdentifier"]
    if params.get("jobType") == "DELETE_ONLY":
        raise errors.validation(
            "DELETE_ONLY jobs process the deletion requests made with Entity Resolution's BatchDeleteUniqueId, "
            "which OpenCleanRooms does not have; use BATCH (INCREMENTAL runs as BATCH).", field="jobType",
            field_message="DELETE_ONLY is not supported")
    with ctx.db.read() as conn:
        row = _table(conn, ctx, membership_id, table_id, active=True)
        sides = [_side(conn, ctx, row, kind) for kind in ("source", "target")]
    if len(sides[0][1].key_columns) != len(sides[1][1].key_columns):
        raise errors.validation(
            f"The source ID namespace has {len(sides[0][1].key_columns)} key column(s) and the target "
            f"{len(sides[1][1].key_columns)}; rule-based exact matching compares them pairwise, so their numbers "
            "must be equal.", reason="INVALID_CONFIGURATION")
    for source, namespace in sides:
        _check_columns(ctx, source, namespace)
    job_id = arns.new_id()
    with ctx.db.write() as conn:
        _table(conn, ctx, membership_id, table_id, active=True)
        if not store.claim_job(conn, table_id, job_id, ctx.now, ctx.now - STALE_JOB_SECONDS):
            raise errors.conflict(f"ID mapping table {table_id} is being populated by another job.", table_id,
                                  RESOURCE_TYPE, "INVALID_STATE")
    _run(ctx, row, job_id, sides)
    return {"idMappingJobId": job_id}


# ------------------------------------------------------------------------------------------------ population


def _side(conn: sa.Connection, ctx: RequestContext, row, kind: str):
    """(catalog table, ID namespace) of the mapping table's source or target; ValidationException naming what is
    missing when the namespace cannot be mapped locally."""
    association = store.associations_by_ids(conn, [row[f"{kind}_association_id"]])[row[f"{kind}_association_id"]]
    arn = association["input_reference_arn"]
    namespace = entity_resolution.get_namespace(conn, arn)
    if namespace is None:
        raise _cannot_populate(f"the {kind} ID namespace {arn} is no longer defined in the catalog")
    missing = namespace.missing()
    if missing:
        raise _cannot_populate(
            f"the {kind} ID namespace {arn} has no local data for rule-based matching (its catalog entry lacks "
            f"{', '.join(missing)}); AWS Entity Resolution would read it from the namespace's own input source or "
            "a provider service, which OpenCleanRooms does not have")
    source = catalog.resolve(conn, namespace.account_id, namespace.region, namespace.database, namespace.table)
    if source is None:
        raise _cannot_populate(f"the {kind} ID namespace {arn} names table {namespace.database}.{namespace.table}, "
                               f"which is not in the catalog of account {namespace.account_id}")
    return source, namespace


def _check_columns(ctx: RequestContext, source, namespace) -> None:
    try:
        names = {column.name for column in catalog.read_schema(source, ctx.s3)}
    except catalog.CatalogError as exc:
        raise _cannot_populate(f"the table of ID namespace {namespace.arn} cannot be read: {exc}") from None
    absent = [c for c in (namespace.id_column, *namespace.key_columns) if c not in names]
    if absent:
        raise _cannot_populate(f"table {namespace.database}.{namespace.table} of ID namespace {namespace.arn} has "
                               f"no column(s) {', '.join(absent)}")


def _run(ctx: RequestContext, row, job_id: str, sides) -> None:
    """Run the job to its end and record how it ended (FAILED with a message the owner may read)."""
    out = os.path.join(_table_dir(ctx, row), f"{job_id}.parquet")
    values: dict = {}
    unexpected = None
    try:
        scans = [catalog.prepare_scan(source, ctx.s3) for source, _ in sides]
        count = id_mapping.build_mapping(
            *(id_mapping.Side(scan.sql(), ns.id_column, ns.key_columns) for scan, (_, ns) in zip(scans, sides)),
            out)
        values = dict(job_status="SUCCEEDED", data_location=out, row_count=count)
    except (catalog.CatalogError, duckdb.Error, OSError) as exc:
        values = dict(job_status="FAILED", job_message=_job_failure(exc))
    except Exception as exc:  # a defect: the job ends FAILED (not RUNNING for an hour), and the call fails
        values, unexpected = dict(job_status="FAILED", job_message="An internal error ended the job."), exc
    with ctx.db.write() as conn:
        previous = store.get_table(conn, row["membership_id"], row["id"])
        recorded = store.finish_job(conn, row["id"], job_id, job_time=ctx.now, **values)
    if not recorded or values["job_status"] != "SUCCEEDED":
        if os.path.exists(out):
            os.remove(out)
    elif previous is not None and previous["data_location"] and previous["data_location"] != out:
        try:
            os.remove(previous["data_location"])
        except OSError:
            pass
    if unexpected is not None:
        raise unexpected


def _job_failure(exc: Exception) -> str:
    if isinstance(exc, catalog.CatalogError):
        return f"An input table could not be read: {exc}"
    if isinstance(exc, duckdb.Error):
        return "The input data could not be matched (a column could not be read as text)."
    return "The mapping could not be written."


def _table_dir(ctx: RequestContext, row) -> str:
    return os.path.join(ctx.id_mapping_dir or "", row["collaboration_id"], row["id"])


def _cannot_populate(what: str) -> ServiceError:
    return errors.validation(f"The ID mapping table cannot be populated: {what}.", reason="INVALID_CONFIGURATION")


# ------------------------------------------------------------------------------------------------ views


def _input_sources(row) -> list[dict]:
    return row["doc"]["inputReferenceProperties"]["idMappingTableInputSource"]


def table_view(row) -> dict:
    """The IdMappingTable output shape."""
    view = {"id": row["id"], "arn": row["arn"], "inputReferenceConfig": row["doc"]["inputReferenceConfig"],
            "membershipId": row["membership_id"],
            "membershipArn": arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
            "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"]}
    if "description" in row["doc"]:
        view["description"] = row["doc"]["description"]
    view.update(name=row["name"], createTime=row["create_time"], updateTime=row["update_time"],
                inputReferenceProperties=row["doc"]["inputReferenceProperties"])
    if "kmsKeyArn" in row["doc"]:
        view["kmsKeyArn"] = row["doc"]["kmsKeyArn"]
    return view


def table_summary(row) -> dict:
    """The IdMappingTableSummary output shape."""
    view = {"collaborationArn": row["collaboration_arn"], "collaborationId": row["collaboration_id"],
            "membershipId": row["membership_id"],
            "membershipArn": arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
            "createTime": row["create_time"], "updateTime": row["update_time"], "id": row["id"], "arn": row["arn"]}
    if "description" in row["doc"]:
        view["description"] = row["doc"]["description"]
    view.update(inputReferenceConfig=row["doc"]["inputReferenceConfig"], name=row["name"])
    return view


# ------------------------------------------------------------------------------------------------ as schemas


class Relations:
    """ID mapping tables as schemas of their collaboration (used by services/schemas.py through wiring). Their
    status does not depend on time, so `now` goes unused."""

    schema_type = RULE_TYPE

    @staticmethod
    def by_name(conn: sa.Connection, collaboration_id: str, name_key: str, *, now: float):
        return _with_inputs(conn, store.schema_by_name(conn, collaboration_id, name_key))

    @staticmethod
    def by_names(conn: sa.Connection, collaboration_id: str, name_keys: list[str], *, now: float) -> dict:
        found = store.schemas_by_names(conn, collaboration_id, name_keys)
        return {key: _with_inputs(conn, row) for key, row in found.items()}

    @staticmethod
    def page(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int, *, now: float):
        return store.page_schemas(conn, collaboration_id, after, limit)

    @staticmethod
    def summary(row) -> dict:
        return {"name": row["name_key"], "type": RULE_TYPE, "creatorAccountId": row["account_id"],
                "createTime": row["create_time"], "updateTime": row["update_time"],
                "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
                "analysisRuleTypes": [RULE_TYPE], "analysisMethod": "DIRECT_QUERY", "resourceArn": row["arn"]}

    @staticmethod
    def view(row) -> dict:
        """The Schema output shape; `row` has its input associations (by_name / by_names)."""
        return {"columns": [{"name": column, "type": "string"} for column in COLUMNS], "partitionKeys": [],
                "analysisRuleTypes": [RULE_TYPE], "analysisMethod": "DIRECT_QUERY",
                "creatorAccountId": row["account_id"], "name": row["name_key"],
                "collaborationId": row["collaboration_id"], "collaborationArn": row["collaboration_arn"],
                "description": row["doc"].get("description", ""), "createTime": row["create_time"],
                "updateTime": row["update_time"], "type": RULE_TYPE,
                "schemaStatusDetails": [_status(row)], "resourceArn": row["arn"],
                "schemaTypeProperties": {"idMappingTable": {"idMappingTableInputSource": _input_sources(row),
                                                            "idMappingTableId": row["id"]}}}

    @staticmethod
    def analysis_rule(row) -> dict:
        """The AnalysisRule output shape of the managed rule (no collaboration or consolidated policy: the model's
        ConsolidatedPolicyV1 has no ID mapping table member)."""
        return {"collaborationId": row["collaboration_id"], "type": RULE_TYPE, "name": row["name_key"],
                "createTime": row["create_time"], "updateTime": row["update_time"],
                "policy": {"v1": {"idMappingTable": managed_rule(row)}}}


def relation_names(conn: sa.Connection, collaboration_id: str, names) -> set[str]:
    """Those of `names` that are ID mapping tables of the collaboration (analysis templates may read them)."""
    return set(store.schemas_by_names(conn, collaboration_id, [name.lower() for name in names]))


def query_tables(conn: sa.Connection, ctx: RequestContext, collaboration, names) -> dict:
    """The ID mapping tables among `names` (the lower-case relation names a query's text names) as relations the
    query can read (protected_queries, through wiring), under the managed rule (policy/id_mapping.py). Only a
    populated table can be read: its last successful job's Parquet file. It restricts no result receivers: it has
    no collaboration analysis rule, and the tables it is joined with decide who receives (docs/behaviour.md)."""
    tables = {}
    for name, row in Relations.by_names(conn, collaboration["id"], sorted(names), now=ctx.now).items():
        unavailable = None
        if row["data_location"] is None:
            unavailable = _status(row)["reasons"][0]["message"]
        info = policy.TableInfo(name=name, owner_account_id=row["account_id"],
                                columns=tuple((column, "string") for column in COLUMNS), rule_type=RULE_TYPE,
                                rule=managed_rule(row), unavailable=unavailable)
        tables[name] = protected_queries.ExtraTable(info=info, id=row["id"], allowed_receivers=None,
                                                    location=row["data_location"], constraints={},
                                                    kind=RULE_TYPE)
    return tables


def managed_rule(row) -> dict:
    """The ID_MAPPING_TABLE rule: joins on both ID columns, whose overlap is required; an ID column is also a
    dimension column when its namespace association allows it (idMappingConfig.allowUseAsDimensionColumn)."""
    dimensions = [column for column, association in zip(COLUMNS, (row["source"], row["target"]))
                  if association is not None and allows_dimension(association)]
    return {"joinColumns": list(COLUMNS), "queryConstraints": [{"requireOverlap": {"columns": list(COLUMNS)}}],
            "dimensionColumns": dimensions}


def _with_inputs(conn: sa.Connection, row):
    if row is None:
        return None
    found = store.associations_by_ids(conn, [row["source_association_id"], row["target_association_id"]])
    return dict(row) | {"source": found.get(row["source_association_id"]),
                        "target": found.get(row["target_association_id"])}


def _status(row) -> dict:
    """DIRECT_ANALYSIS under the managed rule: READY once a population job has succeeded."""
    detail: dict = {"status": "READY"}
    if row["data_location"] is None:
        if row["job_status"] == "RUNNING":
            message = f"ID mapping job {row['job_id']} is populating the ID mapping table."
        elif row["job_status"] == "FAILED":
            message = f"ID mapping job {row['job_id']} failed: {row['job_message']}"
        else:
            message = "The ID mapping table has not been populated; run PopulateIdMappingTable."
        detail = {"status": "NOT_READY", "reasons": [{"code": "ID_MAPPING_TABLE_NOT_POPULATED", "message": message}]}
    detail.update(analysisRuleType=RULE_TYPE, analysisType="DIRECT_ANALYSIS")
    return detail


# ------------------------------------------------------------------------------------------------ checks


def _input(conn: sa.Connection, collaboration_id: str, namespace_arn: str, kind: str):
    row = store.association_for_reference(conn, collaboration_id, namespace_arn)
    if row is None:
        raise errors.validation(
            f"The workflow's {kind.lower()} ID namespace {namespace_arn} is not associated with collaboration "
            f"{collaboration_id}; its owner must create an ID namespace association first.",
            reason="INVALID_CONFIGURATION", field="inputReferenceConfig.inputReferenceArn",
            field_message=f"{kind} ID namespace not associated")
    if row["namespace_type"] != kind:
        raise errors.validation(
            f"The workflow's {kind.lower()} ID namespace {namespace_arn} is of type {row['namespace_type']}.",
            reason="INVALID_CONFIGURATION", field="inputReferenceConfig.inputReferenceArn",
            field_message=f"Not a {kind} ID namespace")
    return row, kind


def _name_taken(name: str, collaboration_id: str | None) -> ServiceError:
    where = f"collaboration {collaboration_id}" if collaboration_id else "this collaboration"
    return errors.conflict(f"A table named {name} already exists in {where}; ID mapping tables and configured "
                           "table associations share the collaboration's table names.", name, RESOURCE_TYPE,
                           "ALREADY_EXISTS")


def _membership(conn: sa.Connection, ctx: RequestContext, membership_id: str, *, active: bool = False):
    return owned_membership(conn, ctx, membership_id, active_for="ID mapping tables" if active else None)


def _table(conn: sa.Connection, ctx: RequestContext, membership_id: str, table_id: str, *, active: bool = False):
    """The membership's table; with `active`, the membership must be ACTIVE (checked after the table is found, so
    that a foreign table is unknown whatever the membership's state)."""
    _membership(conn, ctx, membership_id)
    row = store.get_table(conn, membership_id, table_id)
    if row is None:
        raise errors.not_found(f"ID mapping table {table_id} not found in membership {membership_id}.", table_id,
                               RESOURCE_TYPE)
    if active:
        _membership(conn, ctx, membership_id, active=True)
    return row
