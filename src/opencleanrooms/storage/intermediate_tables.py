"""Storage for intermediate tables, their CUSTOM analysis rule and their versions. Created by migration 8.

An intermediate table belongs to the membership that created it; its name is unique in the collaboration (in lower
case, `name_key`, the name queries use). Its one analysis rule (CUSTOM) sits in the table's row. `status` holds
only the sticky states a data provider or a deleted base table sets (DISALLOWED_BY_DATA_PROVIDER,
BASE_TABLE_REMOVED); every other status is derived from the versions. A version is one population: its row is
written with the protected query that populates it, in one transaction, and reads that query's status
(POPULATE_STARTED while it runs, POPULATE_FAILED if it ends otherwise than SUCCESS); the runner marks it populated
(`populated_time`, its data's location and columns) in the transaction that ends the query SUCCESS, and deletes
the data once the version has expired (`purged_time`). What a table was populated from is indexed (migration 11).
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.protected_queries import ACTIVE_STATUSES
from opencleanrooms.storage.protected_queries import protected_queries as Q
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata
from opencleanrooms.storage.schema import collaborations as C
from opencleanrooms.storage.schema import memberships as MS

STICKY_STATUSES = ("DISALLOWED_BY_DATA_PROVIDER", "BASE_TABLE_REMOVED")

intermediate_tables = sa.Table(
    "intermediate_tables",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),  # the owner (the membership's account)
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),  # as given
    sa.Column("name_key", sa.String(128), nullable=False),  # lower case: the relation name queries use
    sa.Column("arn", sa.String(256), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("status", sa.String(32), nullable=True),  # a sticky status, else NULL (derived from versions)
    sa.Column("status_reason", sa.Text, nullable=True),
    # description, populationAnalysisConfiguration, kmsKeyArn, retentionInDays, columnTypes, dependencies
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("rule_policy", JSONDoc, nullable=True),  # IntermediateTableAnalysisRulePolicy, or NULL
    sa.Column("rule_create_time", sa.Float, nullable=True),
    sa.Column("rule_update_time", sa.Float, nullable=True),
    sa.UniqueConstraint("collaboration_id", "name_key", name="uq_intermediate_tables_collaboration_name"),
    sa.Index("ix_intermediate_tables_membership", "membership_id", "seq"),
    sa.Index("ix_intermediate_tables_collaboration", "collaboration_id"),
)

intermediate_table_versions = sa.Table(
    "intermediate_table_versions",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    # no foreign key: a deleted table's versions stay, expired, until a runner has deleted their data
    sa.Column("table_id", sa.String(36), nullable=False),
    sa.Column("analysis_id", sa.String(36), nullable=False),  # the protected query that populates it
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("expiration_time", sa.Float, nullable=False),
    sa.Column("populated_time", sa.Float, nullable=True),  # set when its query succeeded
    sa.Column("purged_time", sa.Float, nullable=True),  # set when a runner deleted the data of the expired version
    # parameters, kmsKeyArn, inheritedConstraints, dependencies; once populated: location, columns
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Index("ix_intermediate_table_versions_table", "table_id", "seq"),
    sa.Index("ix_intermediate_table_versions_analysis", "analysis_id"),
    sa.Index("ix_intermediate_table_versions_expiration", "expiration_time"),
)

# What each table was last populated from (its doc's `dependencies`, DIRECT and INDIRECT), one row per base table:
# so that finding a table's children, or the tables to mark when a base table goes, reads only those (migration 11).
intermediate_table_dependencies = sa.Table(
    "intermediate_table_dependencies",
    metadata,
    sa.Column("table_id", sa.String(36), nullable=False),
    sa.Column("dependency_id", sa.String(36), nullable=False),  # an association's or an intermediate table's id
    sa.Column("direct", sa.Boolean, nullable=False),
    sa.PrimaryKeyConstraint("table_id", "dependency_id", name="pk_intermediate_table_dependencies"),
    sa.Index("ix_intermediate_table_dependencies_dependency", "dependency_id"),
)

TABLES: list[sa.Table] = [intermediate_tables, intermediate_table_versions]

T, VER, DEP = intermediate_tables, intermediate_table_versions, intermediate_table_dependencies

_VERSION = sa.select(VER, Q.c.status.label("query_status")).select_from(VER.join(Q, Q.c.id == VER.c.analysis_id))
# The tables queries can read (their membership ACTIVE), with their collaboration's ARN: the collaboration's schemas.
_SCHEMA = sa.select(T, C.c.arn.label("collaboration_arn")).select_from(
    T.join(C, C.c.id == T.c.collaboration_id).join(MS, sa.and_(MS.c.id == T.c.membership_id, MS.c.status == "ACTIVE")))
_SCHEMA_PAGE = KeysetQuery(_SCHEMA, T.c.seq, {"collaboration_id": T.c.collaboration_id})
_TABLE_PAGE = KeysetQuery(sa.select(T), T.c.seq, {"membership_id": T.c.membership_id})
_VERSION_PAGE = KeysetQuery(_VERSION, VER.c.seq, {"table_id": VER.c.table_id})


def insert(conn: sa.Connection, row: dict) -> None:
    conn.execute(T.insert().values(**row))


def get(conn: sa.Connection, membership_id: str, table_id: str):
    return conn.execute(sa.select(T).where(T.c.membership_id == membership_id, T.c.id == table_id)).mappings().first()


def by_id(conn: sa.Connection, table_id: str):
    return conn.execute(sa.select(T).where(T.c.id == table_id)).mappings().first()


def by_name(conn: sa.Connection, collaboration_id: str, name: str):
    return conn.execute(sa.select(T).where(T.c.collaboration_id == collaboration_id,
                                           T.c.name_key == name.lower())).mappings().first()


def dependents(conn: sa.Connection, collaboration_id: str, dependency_id: str, *, direct: bool = False) -> list:
    """The collaboration's intermediate tables last populated from `dependency_id` (directly, or also through other
    intermediate tables), oldest first."""
    query = (sa.select(T).join(DEP, DEP.c.table_id == T.c.id)
             .where(T.c.collaboration_id == collaboration_id, DEP.c.dependency_id == dependency_id))
    if direct:
        query = query.where(DEP.c.direct.is_(True))
    return list(conn.execute(query.order_by(T.c.seq)).mappings())


def set_dependencies(conn: sa.Connection, table_id: str, dependencies: list[dict]) -> None:
    """Index the `dependencies` just written to the table's doc (what its latest accepted population reads)."""
    conn.execute(DEP.delete().where(DEP.c.table_id == table_id))
    rows = _dependency_rows(table_id, dependencies)
    if rows:
        conn.execute(DEP.insert(), rows)


def _dependency_rows(table_id: str, dependencies) -> list[dict]:
    found = {}
    for dependency in dependencies or []:
        direct = dependency.get("parentType") == "DIRECT"
        found[dependency["id"]] = found.get(dependency["id"], False) or direct
    return [{"table_id": table_id, "dependency_id": key, "direct": direct} for key, direct in found.items()]


def index_dependencies(conn: sa.Connection) -> None:
    """Migration 11: the dependency index, filled from the tables' docs."""
    DEP.create(conn, checkfirst=True)
    for row in conn.execute(sa.select(T.c.id, T.c.doc)).all():
        rows = _dependency_rows(row.id, row.doc.get("dependencies"))
        if rows:
            conn.execute(DEP.insert(), rows)


def queryable_by_names(conn: sa.Connection, collaboration_id: str, name_keys) -> list:
    """The tables of the collaboration with these names (lower case) whose membership is ACTIVE: the relations a
    query naming them can read. One statement, however many tables the collaboration has."""
    if not name_keys:
        return []
    query = (sa.select(T).join(MS, MS.c.id == T.c.membership_id)
             .where(T.c.collaboration_id == collaboration_id, T.c.name_key.in_(sorted(name_keys)),
                    MS.c.status == "ACTIVE").order_by(T.c.seq))
    return list(conn.execute(query).mappings())


def schema_by_name(conn: sa.Connection, collaboration_id: str, name_key: str):
    return conn.execute(_SCHEMA.where(T.c.collaboration_id == collaboration_id, T.c.name_key == name_key)
                        ).mappings().first()


def schemas_by_names(conn: sa.Connection, collaboration_id: str, name_keys: list[str]) -> dict:
    rows = conn.execute(_SCHEMA.where(T.c.collaboration_id == collaboration_id, T.c.name_key.in_(name_keys))
                        ).mappings().all()
    return {row["name_key"]: row for row in rows}


def page_schemas(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int):
    rows, last = _SCHEMA_PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id)
    return [row._mapping for row in rows], last


def count_for_membership(conn: sa.Connection, membership_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(T).where(T.c.membership_id == membership_id)
                        ).scalar_one()


def update(conn: sa.Connection, table_id: str, **values) -> None:
    conn.execute(T.update().where(T.c.id == table_id).values(**values))


def delete(conn: sa.Connection, table_id: str, now: float) -> None:
    """The table goes; its versions expire now, so that a runner deletes their data."""
    conn.execute(VER.update().where(VER.c.table_id == table_id, VER.c.expiration_time > now)
                 .values(expiration_time=now))
    conn.execute(DEP.delete().where(DEP.c.table_id == table_id))
    conn.execute(T.delete().where(T.c.id == table_id))


def page_for_membership(conn: sa.Connection, membership_id: str, after: int | None, limit: int):
    return _TABLE_PAGE.fetch(conn, after, limit, membership_id=membership_id)


# ------------------------------------------------------------------------------------------------ versions


def insert_version(conn: sa.Connection, row: dict) -> None:
    conn.execute(VER.insert().values(**row))


def latest_version(conn: sa.Connection, table_id: str):
    """The most recent population attempt, with its query's status."""
    return conn.execute(_VERSION.where(VER.c.table_id == table_id).order_by(VER.c.seq.desc()).limit(1)
                        ).mappings().first()


def active_version(conn: sa.Connection, table_id: str):
    """The most recent populated version (expired or not), or None."""
    return conn.execute(_VERSION.where(VER.c.table_id == table_id, VER.c.populated_time.is_not(None))
                        .order_by(VER.c.seq.desc()).limit(1)).mappings().first()


def active_versions(conn: sa.Connection, table_ids) -> dict:
    """active_version of each of the tables, in one statement: {table_id: version}; tables without one are
    absent."""
    if not table_ids:
        return {}
    newest = (sa.select(sa.func.max(VER.c.seq)).select_from(VER.join(Q, Q.c.id == VER.c.analysis_id))
              .where(VER.c.table_id.in_(sorted(set(table_ids))), VER.c.populated_time.is_not(None))
              .group_by(VER.c.table_id))
    return {row["table_id"]: row for row in conn.execute(_VERSION.where(VER.c.seq.in_(newest))).mappings()}


def populating(conn: sa.Connection, table_id: str) -> bool:
    """Whether a population of the table has not ended yet."""
    return conn.execute(sa.select(sa.func.count()).select_from(VER.join(Q, Q.c.id == VER.c.analysis_id))
                        .where(VER.c.table_id == table_id, Q.c.status.in_(ACTIVE_STATUSES))).scalar_one() > 0


def page_versions(conn: sa.Connection, table_id: str, after: int | None, limit: int):
    return _VERSION_PAGE.fetch(conn, after, limit, table_id=table_id)


def mark_populated(conn: sa.Connection, analysis_id: str, now: float, location: str, columns: list) -> None:
    """The runner's part: the version its query populated now has data, at `location`, with these columns
    ([name, Glue type] pairs). A version whose table was deleted meanwhile is gone: nothing to mark."""
    row = conn.execute(sa.select(VER.c.id, VER.c.doc).where(VER.c.analysis_id == analysis_id)).first()
    if row is None:
        return
    doc = dict(row.doc, location=location, columns=[list(c) for c in columns])
    conn.execute(VER.update().where(VER.c.id == row.id).values(populated_time=now, doc=doc))


def expired_with_data(conn: sa.Connection, now: float, limit: int = 20) -> list:
    """Populated versions past their expiration whose data is still stored: (id, doc) rows."""
    return conn.execute(sa.select(VER.c.id, VER.c.doc).where(
        VER.c.expiration_time <= now, VER.c.populated_time.is_not(None), VER.c.purged_time.is_(None))
        .order_by(VER.c.expiration_time).limit(limit)).all()


def mark_purged(conn: sa.Connection, version_id: str, now: float) -> None:
    conn.execute(VER.update().where(VER.c.id == version_id).values(purged_time=now))
