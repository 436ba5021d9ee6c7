"""The local stand-in for AWS Entity Resolution: ID namespaces and ID mapping workflows, keyed by their ARNs.

OpenCleanRooms has no Entity Resolution. An ID namespace ARN that an ID namespace association names, and an ID
mapping workflow ARN that an ID mapping table names, resolve through these entries (added with `opencleanrooms
catalog import FILE.toml`, see docs/id-mapping.md):

- an ID namespace: its type (SOURCE or TARGET) and, optionally, the catalog table of its owner's account that holds
  its records: the column of the record IDs and the key columns that rule-based matching compares;
- an ID mapping workflow: the ARNs of its source and target ID namespaces.

The account and region of an entry are those of its ARN.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from opencleanrooms.catalog.errors import InvalidEntry
from opencleanrooms.storage.schema import JSONDoc, metadata

NAMESPACE_TYPES = ("SOURCE", "TARGET")
# The model's IdNamespaceAssociationInputReferenceArn and IdMappingTableInputReferenceArn, narrowed to `aws`.
_NAMESPACE_ARN = re.compile(r"arn:aws:entityresolution:(?P<region>[\w]{2}-[\w]{4,9}-[\d]):(?P<account>[\d]{12}):"
                            r"idnamespace/[\d\w-]+")
_WORKFLOW_ARN = re.compile(r"arn:aws:entityresolution:(?P<region>[\w]{2}-[\w]{4,9}-[\d]):(?P<account>[\d]{12}):"
                           r"idmappingworkflow/[\d\w-]+")
_NAME = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_ -]{0,127}")
_COLUMN = re.compile(r"[a-z0-9_][a-z0-9_ -]{0,126}")

id_namespaces = sa.Table(
    "er_id_namespaces",
    metadata,
    sa.Column("arn", sa.String(256), primary_key=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),  # type, database?, table?, id_column?, key_columns?
    sa.Column("update_time", sa.Float, nullable=False),
)

id_mapping_workflows = sa.Table(
    "er_id_mapping_workflows",
    metadata,
    sa.Column("arn", sa.String(256), primary_key=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("source_arn", sa.String(256), nullable=False),
    sa.Column("target_arn", sa.String(256), nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
)

TABLES = [id_namespaces, id_mapping_workflows]


@dataclass(frozen=True)
class IdNamespace:
    arn: str
    account_id: str
    region: str
    type: str  # SOURCE | TARGET
    database: str | None = None  # the catalog table of `account_id` holding the records, when there is one
    table: str | None = None
    id_column: str | None = None
    key_columns: tuple[str, ...] = field(default_factory=tuple)

    def missing(self) -> list[str]:
        """What rule-based matching needs that this entry lacks (empty: nothing)."""
        return [name for name, value in (("database", self.database), ("table", self.table),
                                         ("id_column", self.id_column), ("key_columns", self.key_columns))
                if not value]


@dataclass(frozen=True)
class IdMappingWorkflow:
    arn: str
    account_id: str
    region: str
    source_arn: str
    target_arn: str


def make_namespace(entry: dict) -> IdNamespace:
    """An ID namespace from a catalog file's `[[id_namespaces]]` entry. Raises InvalidEntry."""
    _only(entry, {"arn", "type", "database", "table", "id_column", "key_columns"})
    arn = _arn(entry, "arn", _NAMESPACE_ARN, "an Entity Resolution ID namespace ARN")
    kind = entry.get("type")
    if kind not in NAMESPACE_TYPES:
        raise InvalidEntry(f"type must be one of {', '.join(NAMESPACE_TYPES)}")
    for key in ("database", "table"):
        if key in entry and (not isinstance(entry[key], str) or not _NAME.fullmatch(entry[key])):
            raise InvalidEntry(f"{key} must be a Glue name")
    if ("database" in entry) != ("table" in entry):
        raise InvalidEntry("database and table go together")
    id_column = entry.get("id_column")
    keys = entry.get("key_columns", [])
    if id_column is not None and (not isinstance(id_column, str) or not _COLUMN.fullmatch(id_column.lower())):
        raise InvalidEntry("id_column must be a column name")
    if not isinstance(keys, list) or not all(isinstance(k, str) and _COLUMN.fullmatch(k.lower()) for k in keys):
        raise InvalidEntry("key_columns must be a list of column names")
    if len(set(k.lower() for k in keys)) != len(keys):
        raise InvalidEntry("key_columns lists a column twice")
    match = _NAMESPACE_ARN.fullmatch(arn)
    return IdNamespace(arn=arn, account_id=match["account"], region=match["region"], type=kind,
                       database=entry.get("database", "").lower() or None,
                       table=entry.get("table", "").lower() or None,
                       id_column=id_column.lower() if id_column else None,
                       key_columns=tuple(k.lower() for k in keys))


def make_workflow(entry: dict) -> IdMappingWorkflow:
    """An ID mapping workflow from a catalog file's `[[id_mapping_workflows]]` entry. Raises InvalidEntry."""
    _only(entry, {"arn", "source", "target"})
    arn = _arn(entry, "arn", _WORKFLOW_ARN, "an Entity Resolution ID mapping workflow ARN")
    source = _arn(entry, "source", _NAMESPACE_ARN, "an ID namespace ARN")
    target = _arn(entry, "target", _NAMESPACE_ARN, "an ID namespace ARN")
    if source == target:
        raise InvalidEntry("source and target must be different ID namespaces")
    match = _WORKFLOW_ARN.fullmatch(arn)
    return IdMappingWorkflow(arn=arn, account_id=match["account"], region=match["region"], source_arn=source,
                             target_arn=target)


def put_namespace(conn: sa.Connection, namespace: IdNamespace) -> None:
    doc = {"type": namespace.type, "database": namespace.database, "table": namespace.table,
           "id_column": namespace.id_column, "key_columns": list(namespace.key_columns)}
    values = dict(account_id=namespace.account_id, region=namespace.region, doc=doc, update_time=time.time())
    _upsert(conn, id_namespaces, namespace.arn, values)


def put_workflow(conn: sa.Connection, workflow: IdMappingWorkflow) -> None:
    values = dict(account_id=workflow.account_id, region=workflow.region, source_arn=workflow.source_arn,
                  target_arn=workflow.target_arn, update_time=time.time())
    _upsert(conn, id_mapping_workflows, workflow.arn, values)


def get_namespace(conn: sa.Connection, arn: str) -> IdNamespace | None:
    row = conn.execute(sa.select(id_namespaces).where(id_namespaces.c.arn == arn)).mappings().first()
    if row is None:
        return None
    doc = row["doc"]
    return IdNamespace(arn=row["arn"], account_id=row["account_id"], region=row["region"], type=doc["type"],
                       database=doc.get("database"), table=doc.get("table"), id_column=doc.get("id_column"),
                       key_columns=tuple(doc.get("key_columns") or ()))


def get_workflow(conn: sa.Connection, arn: str) -> IdMappingWorkflow | None:
    row = conn.execute(sa.select(id_mapping_workflows).where(id_mapping_workflows.c.arn == arn)).mappings().first()
    if row is None:
        return None
    return IdMappingWorkflow(arn=row["arn"], account_id=row["account_id"], region=row["region"],
                             source_arn=row["source_arn"], target_arn=row["target_arn"])


def _upsert(conn: sa.Connection, table: sa.Table, arn: str, values: dict) -> None:
    if conn.execute(table.update().where(table.c.arn == arn).values(**values)).rowcount == 0:
        conn.execute(table.insert().values(arn=arn, **values))


def _only(entry: dict, keys: set[str]) -> None:
    unknown = set(entry) - keys
    if unknown:
        raise InvalidEntry(f"unknown key(s) {', '.join(sorted(unknown))}")


def _arn(entry: dict, key: str, pattern: re.Pattern, what: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidEntry(f"{key} must be {what}")
    return value
