"""Analysis templates: SQL queries (or PySpark jobs) a member writes for a collaboration, with parameters.

A template belongs to one membership: only the membership's owner creates, reads, changes (the description only:
templates are immutable) and deletes it through the membership; anyone else's membership, like an unknown id, is
ResourceNotFoundException. Every INVITED or ACTIVE member of the collaboration reads the collaboration's templates
through the collaboration calls (by ARN); anyone else gets the collaboration's usual AccessDeniedException.

A SQL template's text is parsed (services/sql_templates.py): one SELECT whose `:name` parameters are all declared
and whose tables are all relations (configured table associations, ID mapping tables) of the collaboration. A
PySpark template's artifacts are read from the server's S3 endpoint to record their SHA-256 hashes. What each check
rests on is listed in docs/behaviour.md under "Analysis templates".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlalchemy as sa

from opencleanrooms import catalog
from opencleanrooms.catalog import s3 as s3_access
from opencleanrooms.catalog.model import has_glob
from opencleanrooms.encoded import encode
from opencleanrooms.errors import ServiceError
from opencleanrooms.services import arns, errors, locks, sql_templates
from opencleanrooms.services.access import PARTICIPANT_STATUSES, member_view, owned_membership
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.pagination import list_page
from opencleanrooms.services.registry import operation
from opencleanrooms.services.tags import check_new_resource_tags
from opencleanrooms.storage import analysis_templates as store
from opencleanrooms.storage import table_associations as association_store
from opencleanrooms.storage import tags as tag_store
from opencleanrooms.storage.database import DuplicateError

# Relations besides configured table associations that a SQL template may read: (conn, collaboration id, names) ->
# those of `names` that are such relations. Filled by services.wiring (ID mapping tables).
OTHER_RELATIONS: list[Callable] = []

# The model's ResourceType has no analysis template: a template is a membership's sub-resource, and collaboration
# calls address it in a collaboration.
RESOURCE_TYPE = "MEMBERSHIP"
COLLABORATION_RESOURCE_TYPE = "COLLABORATION"
NOT_FOUND_CODE = "ResourceNotFoundException"  # BatchGet errors' code: the error the single Get would raise
SQL = "SQL"
PYSPARK = frozenset({"PYSPARK_1_0", "PYSPARK_2_0"})  # every PySpark runtime the model names
SPARK_ENGINE = "SPARK"
MAX_ARTIFACT_BYTES = 1024 ** 3  # AWS: "the maximum size of all combined artifacts ... is 1 GB"
_DOC_FIELDS = ("description", "format", "source", "analysisParameters", "errorMessageConfiguration",
               "syntheticDataParameters")
_OPTIONAL_OUTPUT = ("sourceMetadata", "analysisParameters", "validations", "errorMessageConfiguration",
                    "syntheticDataParameters")
_CHUNK = 1024 * 1024


def membership_in_use(conn: sa.Connection, membership_id: str) -> str | None:
    """A membership that still has analysis templates cannot be deleted."""
    count = store.count_for_membership(conn, membership_id)
    return f"{count} analysis template{'' if count == 1 else 's'}" if count else None


def with_templates(resolve_membership):
    """Template ARNs (`membership/<membership id>/analysistemplate/<id>`) share the `membership` resource type with
    membership ARNs; resolve both, for the template's owner only."""

    def resolve(conn: sa.Connection, ctx: RequestContext, ids: tuple[str, ...]) -> bool:
        if len(ids) == 3 and ids[1] == "analysistemplate":
            return store.get_owned(conn, ctx.region, ctx.account_id, ids[0], ids[2]) is not None
        return resolve_membership(conn, ctx, ids)

    return resolve


@operation("CreateAnalysisTemplate")
def create_template(ctx: RequestContext, params: dict) -> dict:
    membership_id, name, analysis_format = params["membershipIdentifier"], params["name"], params["format"]
    check_new_resource_tags(params.get("tags") or {})
    tables = _check_request(params)
    source_metadata = None
    if analysis_format in PYSPARK:  # the artifacts are read outside the write transaction
        with ctx.db.read() as conn:
            membership = _membership(conn, ctx, membership_id, active=True)
            _check_in_collaboration(conn, membership, analysis_format, tables)
            foreign = _foreign_s3_locations(conn, ctx.account_id)
        source_metadata = _artifact_metadata(ctx, params["source"]["artifacts"], foreign)
    template_id = arns.new_id()
    arn = arns.membership_resource_arn(ctx.region, ctx.account_id, membership_id, "analysistemplate", template_id)
    doc = {key: params[key] for key in _DOC_FIELDS if key in params}
    doc["schema"] = {"referencedTables": tables}
    if source_metadata is not None:
        doc["sourceMetadata"] = source_metadata
    try:
        with ctx.db.write(locks=[locks.membership(membership_id)]) as conn:  # the quota's count then insert
            membership = _membership(conn, ctx, membership_id, active=True)
            _check_in_collaboration(conn, membership, analysis_format, tables)
            if store.name_taken(conn, membership_id, name):
                raise _name_taken(name, membership_id)
            ctx.quotas.check("analysis_templates", store.count_for_membership(conn, membership_id) + 1)
            store.insert(conn, {
                "id": template_id, "region": ctx.region, "account_id": ctx.account_id,
                "collaboration_id": membership["collaboration_id"], "membership_id": membership_id, "name": name,
                "arn": arn, "create_time": ctx.now, "update_time": ctx.now, "doc": doc,
            })
            tag_store.put(conn, arn, params.get("tags") or {})
            row = _refresh_summaries(conn, membership_id, template_id)
            view = template_view(row, validations(conn, row))
    except DuplicateError:  # a concurrent create took the name (only where writers do not queue)
        raise _name_taken(name, membership_id) from None
    return {"analysisTemplate": view}


@operation("GetAnalysisTemplate")
def get_template(ctx: RequestContext, params: dict) -> dict:
    with ctx.db.read() as conn:
        row = _template(conn, ctx, params["membershipIdentifier"], params["analysisTemplateIdentifier"])
        view = template_view(row, validations(conn, row))
    return {"analysisTemplate": view}


@operation("UpdateAnalysisTemplate")
def update_template(ctx: RequestContext, params: dict) -> dict:
    membership_id, template_id = params["membershipIdentifier"], params["analysisTemplateIdentifier"]
    with ctx.db.write() as conn:
        row = _template(conn, ctx, membership_id, template_id)
        doc = dict(row["doc"])
        if "description" in params:
            doc["description"] = params["description"]
        store.update(conn, template_id, doc=doc, update_time=ctx.now)
        row = _refresh_summaries(conn, membership_id, template_id)
        view = template_view(row, validations(conn, row))
    return {"analysisTemplate": view}


@operation("DeleteAnalysisTemplate")
def delete_template(ctx: RequestContext, params: dict) -> None:
    with ctx.db.write() as conn:
        row = _template(conn, ctx, params["membershipIdentifier"], params["analysisTemplateIdentifier"])
        store.delete(conn, row["id"])
        tag_store.remove(conn, row["arn"])


@operation("ListAnalysisTemplates")
def list_templates(ctx: RequestContext, params: dict) -> dict:
    membership_id = params["membershipIdentifier"]

    def fetch(conn, after, limit):
        _membership(conn, ctx, membership_id)
        return store.page_for_membership(conn, membership_id, after, limit)

    return list_page(ctx, params, "analysisTemplateSummaries", (membership_id,), fetch)


# ------------------------------------------------------------------------------------------------ collaboration


@operation("GetCollaborationAnalysisTemplate")
def get_collaboration_template(ctx: RequestContext, params: dict) -> dict:
    collaboration_id, arn = params["collaborationIdentifier"], params["analysisTemplateArn"]
    with ctx.db.read() as conn:
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        row = store.by_arns_in_collaboration(conn, collaboration_id, [arn]).get(arn)
        if row is None:
            raise _not_in_collaboration(arn, collaboration_id)
        view = collaboration_template_view(row, validations(conn, row))
    return {"collaborationAnalysisTemplate": view}


@operation("ListCollaborationAnalysisTemplates")
def list_collaboration_templates(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]

    def fetch(conn, after, limit):
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        return store.page_for_collaboration(conn, collaboration_id, after, limit)

    return list_page(ctx, params, "collaborationAnalysisTemplateSummaries", (collaboration_id,), fetch)


@operation("BatchGetCollaborationAnalysisTemplate")
def batch_get_collaboration_templates(ctx: RequestContext, params: dict) -> dict:
    collaboration_id = params["collaborationIdentifier"]
    requested = list(dict.fromkeys(params["analysisTemplateArns"]))  # each ARN answered once, in request order
    found, failures = [], []
    with ctx.db.read() as conn:
        member_view(conn, ctx, collaboration_id, PARTICIPANT_STATUSES)
        rows = store.by_arns_in_collaboration(conn, collaboration_id, requested)
        for arn in requested:
            row = rows.get(arn)
            if row is None:
                failures.append({"arn": arn, "code": NOT_FOUND_CODE,
                                 "message": _not_in_collaboration(arn, collaboration_id).message})
            else:
                found.append(collaboration_template_view(row, validations(conn, row)))
    return {"collaborationAnalysisTemplates": found, "errors": failures}


# ------------------------------------------------------------------------------------------------ views


def template_view(row, checked: list[dict] | None) -> dict:
    """The AnalysisTemplate output shape."""
    doc = row["doc"]
    view = {
        "id": row["id"],
        "arn": row["arn"],
        "collaborationId": row["collaboration_id"],
        "collaborationArn": row["collaboration_arn"],
        "membershipId": row["membership_id"],
        "membershipArn": arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
    }
    if "description" in doc:
        view["description"] = doc["description"]
    view.update(name=row["name"], createTime=row["create_time"], updateTime=row["update_time"],
                schema=doc["schema"], format=doc["format"], source=doc["source"])
    _add_optional(view, doc, checked)
    return view


def collaboration_template_view(row, checked: list[dict] | None) -> dict:
    """The CollaborationAnalysisTemplate output shape (the source included, as every member may review it)."""
    doc = row["doc"]
    view = {"id": row["id"], "arn": row["arn"], "collaborationId": row["collaboration_id"],
            "collaborationArn": row["collaboration_arn"]}
    if "description" in doc:
        view["description"] = doc["description"]
    view.update(creatorAccountId=row["account_id"], name=row["name"], createTime=row["create_time"],
                updateTime=row["update_time"], schema=doc["schema"], format=doc["format"], source=doc["source"])
    _add_optional(view, doc, checked)
    return view


def template_summary(row) -> dict:
    """The AnalysisTemplateSummary output shape."""
    return _summary(row, membershipArn=arns.membership_arn(row["region"], row["account_id"], row["membership_id"]),
                    membershipId=row["membership_id"])


def collaboration_template_summary(row) -> dict:
    """The CollaborationAnalysisTemplateSummary output shape."""
    return _summary(row, creatorAccountId=row["account_id"])


def _summary(row, **specific) -> dict:
    doc = row["doc"]
    summary = {"arn": row["arn"], "createTime": row["create_time"], "id": row["id"], "name": row["name"],
               "updateTime": row["update_time"], "collaborationArn": row["collaboration_arn"],
               "collaborationId": row["collaboration_id"], **specific}
    if "description" in doc:
        summary["description"] = doc["description"]
    summary["isSyntheticData"] = "syntheticDataParameters" in doc
    return summary


def _add_optional(view: dict, doc: dict, checked: list[dict] | None) -> None:
    values = {**doc, "validations": checked}
    for key in _OPTIONAL_OUTPUT:
        if values.get(key) is not None:
            view[key] = values[key]


# ------------------------------------------------------------------------------------------------ validations


def validations(conn: sa.Connection, row) -> list[dict] | None:
    """The template's DIFFERENTIAL_PRIVACY validation, computed from the referenced tables' rules as they are now
    (the model: validation is performed when templates are created and fetched); None when no referenced table's
    rule uses differential privacy."""
    doc = row["doc"]
    schemas = association_store.schemas_by_names(conn, row["collaboration_id"], doc["schema"]["referencedTables"])
    private = sorted(name for name, schema in schemas.items() if schema["table_rule_type"] == "CUSTOM"
                     and "differentialPrivacy" in schema["table_rule_policy"]["v1"]["custom"])
    if not private:
        return None
    named = ", ".join(private)
    if doc["format"] in PYSPARK:
        reasons = [f"PySpark analyses cannot use tables with differential privacy: {named}."]
    elif (row["collaboration_doc"] or {}).get("analyticsEngine") == SPARK_ENGINE:
        reasons = [f"The collaboration's SPARK analytics engine does not support differential privacy, which these "
                   f"tables use: {named}."]
    else:
        reasons = sql_templates.differential_privacy_problems(sql_templates.parse_query(doc["source"]["text"]))
    if reasons:
        return [{"type": "DIFFERENTIAL_PRIVACY", "status": "INVALID",
                 "reasons": [{"message": reason} for reason in reasons]}]
    return [{"type": "DIFFERENTIAL_PRIVACY", "status": "UNABLE_TO_VALIDATE", "reasons": [{"message": (
        f"These tables use differential privacy: {named}. The template's final SELECT aggregates with functions "
        "differential privacy supports; the rest of the general-purpose query structure is not checked by this "
        "server.")}]}]


# ------------------------------------------------------------------------------------------------ checks


def _check_request(params: dict) -> list[str]:
    """The checks that need only the request; returns the referenced tables (lower case, sorted, unique)."""
    analysis_format, source = params["format"], params["source"]
    parameters = params.get("analysisParameters") or []
    wanted = "text" if analysis_format == SQL else "artifacts"
    if wanted not in source:
        given = next(iter(source), None)
        raise errors.validation(f"An analysis template of format {analysis_format} needs source.{wanted}, not "
                                f"source.{given}.", field="source",
                                field_message=f"Must be source.{wanted} for format {analysis_format}")
    sql_templates.check_parameter_declarations(parameters)
    declared = _declared_tables(params)
    if analysis_format in PYSPARK:
        if not declared:
            raise errors.validation("A PySpark analysis template must name the tables it reads in "
                                    "schema.referencedTables.", reason="INVALID_CONFIGURATION",
                                    field="schema.referencedTables")
        return declared
    query = sql_templates.parse_query(source["text"])
    sql_templates.check_parameters(query, parameters)
    if declared and declared != query.tables:
        missing = [t for t in query.tables if t not in declared]
        extra = [t for t in declared if t not in query.tables]
        problems = ([f"read by the SQL but not listed: {', '.join(missing)}"] if missing else []) + (
            [f"listed but not read by the SQL: {', '.join(extra)}"] if extra else [])
        raise errors.validation(f"schema.referencedTables must list the tables the SQL reads; "
                                f"{'; '.join(problems)}.", reason="INVALID_CONFIGURATION",
                                field="schema.referencedTables", field_message="; ".join(problems))
    return query.tables


def _declared_tables(params: dict) -> list[str]:
    return sorted({name.lower() for name in (params.get("schema") or {}).get("referencedTables") or []})


def _check_in_collaboration(conn: sa.Connection, membership, analysis_format: str, tables: list[str]) -> None:
    """PySpark needs the SPARK analytics engine, and every referenced table must be a relation of the
    collaboration."""
    collaboration_id = membership["collaboration_id"]
    if analysis_format in PYSPARK and (membership["collaboration_doc"] or {}).get("analyticsEngine") != SPARK_ENGINE:
        raise errors.validation(f"PySpark analysis templates need a collaboration whose analytics engine is SPARK; "
                                f"collaboration {collaboration_id} does not use it.",
                                reason="INVALID_CONFIGURATION", field="format")
    known = association_store.schemas_by_names(conn, collaboration_id, tables) if tables else {}
    unknown = [table for table in tables if table not in known]
    if unknown and analysis_format == SQL:
        for find in OTHER_RELATIONS:
            found = find(conn, collaboration_id, unknown)
            unknown = [table for table in unknown if table not in found]
    if unknown:
        message = (f"These tables are not configured table associations of collaboration {collaboration_id}: "
                   f"{', '.join(unknown)}.")
        if analysis_format == SQL:
            raise errors.validation(message, reason="INVALID_QUERY", field=sql_templates.TEXT_FIELD)
        raise errors.validation(message, reason="INVALID_CONFIGURATION", field="schema.referencedTables")


def _membership(conn: sa.Connection, ctx: RequestContext, membership_id: str, *, active: bool = False):
    return owned_membership(conn, ctx, membership_id, active_for="analysis templates" if active else None)


def _template(conn: sa.Connection, ctx: RequestContext, membership_id: str, template_id: str):
    _membership(conn, ctx, membership_id)
    row = store.get(conn, membership_id, template_id)
    if row is None:
        raise errors.not_found(f"Analysis template {template_id} not found in membership {membership_id}.",
                               template_id, RESOURCE_TYPE)
    return row


def _not_in_collaboration(arn: str, collaboration_id: str) -> ServiceError:
    return errors.not_found(f"Analysis template {arn} not found in collaboration {collaboration_id}.", arn,
                            COLLABORATION_RESOURCE_TYPE)


def _name_taken(name: str, membership_id: str) -> ServiceError:
    return errors.conflict(f"An analysis template named {name} already exists in membership {membership_id}; "
                           "names are unique within a membership.", name, RESOURCE_TYPE, "ALREADY_EXISTS")


def _refresh_summaries(conn: sa.Connection, membership_id: str, template_id: str):
    """Re-encode the template's stored summaries; returns its current row."""
    row = store.get(conn, membership_id, template_id)
    store.set_summaries(conn, template_id, encode(template_summary(row)), encode(collaboration_template_summary(row)))
    return row


# ------------------------------------------------------------------------------------------------ artifacts


def _artifact_metadata(ctx: RequestContext, artifacts: dict, foreign: list[str]) -> dict:
    """AnalysisSourceMetadata: the SHA-256 of each artifact, read with the server's S3 settings."""
    settings = ctx.s3
    if settings is None or not (settings.endpoint_url or settings.access_key_id):
        raise errors.validation("The artifacts cannot be read: this server has no S3 endpoint configured (the [s3] "
                                "settings), so it cannot compute their SHA-256 hashes.",
                                reason="INVALID_CONFIGURATION", field="source.artifacts")
    located = [("source.artifacts.entryPoint.location", artifacts["entryPoint"]["location"])]
    located += [(f"source.artifacts.additionalArtifacts.{i}.member.location", artifact["location"])
                for i, artifact in enumerate(artifacts.get("additionalArtifacts") or [], 1)]
    try:
        client = s3_access._client(settings)
    except Exception:  # noqa: BLE001  (botocore: bad region name, broken AWS config file, ...)
        raise errors.validation("The artifacts cannot be read: the server's S3 client could not be set up.",
                                reason="INVALID_CONFIGURATION", field="source.artifacts") from None
    heads = []
    for field, location in located:
        uri = f"s3://{location['bucket']}/{location['key']}"
        if _is_foreign(uri, foreign):  # another account's catalog data: answered as if it did not exist
            raise _unreadable(field, uri, "no object that this account may read is there")
        head = _s3(client.head_object, field, uri, Bucket=location["bucket"], Key=location["key"])
        heads.append((field, location, uri, head.get("ETag"), int(head.get("ContentLength") or 0)))
    total = sum(size for *_, size in heads)
    if total > MAX_ARTIFACT_BYTES:
        raise errors.validation(f"The artifacts take {total} bytes together; at most {MAX_ARTIFACT_BYTES} (1 GB) "
                                "are allowed.", reason="INVALID_CONFIGURATION", field="source.artifacts")
    hashes = []
    for field, location, uri, etag, _ in heads:
        extra = {"IfMatch": etag} if etag else {}
        body = _s3(client.get_object, field, uri, Bucket=location["bucket"], Key=location["key"], **extra)["Body"]
        digest = hashlib.sha256()
        try:
            for chunk in iter(lambda: body.read(_CHUNK), b""):
                digest.update(chunk)
        except Exception:  # noqa: BLE001  (a connection dropped mid-read)
            raise _unreadable(field, uri, "the read was interrupted") from None
        finally:
            body.close()
        hashes.append({"sha256": digest.hexdigest()})
    metadata = {"entryPointHash": hashes[0]}
    if len(hashes) > 1:
        metadata["additionalArtifactHashes"] = hashes[1:]
    return {"artifacts": metadata}


def _s3(method, field: str, uri: str, **kwargs):
    """Call S3; failures become ValidationException on the artifact's field. Missing objects and objects the server
    may not read get the same answer, so that callers learn nothing about the server's S3 beyond their own
    objects."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    try:
        return method(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        if code in ("PreconditionFailed", "412"):
            raise _unreadable(field, uri, "it changed while it was being read; try again") from None
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket", "403", "AccessDenied", "Forbidden",
                    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"):
            raise _unreadable(field, uri, "no object that this account may read is there") from None
        raise _unreadable(field, uri, f"S3 answered {code}") from None
    except (EndpointConnectionError, ConnectionError):
        raise _unreadable(field, uri, "the S3 endpoint could not be reached") from None
    except BotoCoreError as exc:
        raise _unreadable(field, uri, f"S3 error ({type(exc).__name__})") from None


def _unreadable(field: str, uri: str, why: str) -> ServiceError:
    return errors.validation(f"The artifact {uri} cannot be read: {why}.", reason="INVALID_CONFIGURATION",
                             field=field, field_message=f"Cannot be read: {why}")


def _foreign_s3_locations(conn: sa.Connection, account_id: str) -> list[str]:
    """The S3 locations of other accounts' catalog tables (their data, which no artifact may point into)."""
    return [entry.location for entry in catalog.store.all_entries(conn)
            if entry.account_id != account_id and entry.is_s3]


def _is_foreign(uri: str, locations: list[str]) -> bool:
    for location in locations:
        if has_glob(location):
            cut = min(i for i in (location.find(c) for c in "*?[") if i >= 0)
            if uri.startswith(location[:cut]):
                return True
        elif uri == location or uri.startswith(location.rstrip("/") + "/"):
            return True
    return False
