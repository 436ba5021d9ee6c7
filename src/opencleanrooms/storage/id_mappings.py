"""Storage for ID namespace associations and ID mapping tables (tables and queries). Tables are created by
migration 9.

An ID namespace association links an AWS Entity Resolution ID namespace (by ARN) to the collaboration of one of its
owner's memberships; a namespace is associated with a collaboration at most once (unique key). An ID mapping table
maps the IDs of a SOURCE association to those of a TARGET association of the same collaboration; its name is a
relation name of the collaboration (`name_key`, lower case, unique per collaboration). The last population job of
a table is kept on its row (`job_*`); the mapping it produced is a Parquet file at `data_location`.

Lists are keyset pages ordered by `seq`, newest first; their summaries are rendered by the service.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata
from opencleanrooms.storage.schema import collaborations as C
from opencleanrooms.storage.schema import memberships as MS

id_namespace_associations = sa.Table(
    "id_namespace_associations",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),  # the membership's owner
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("arn", sa.String(256), nullable=False),
    sa.Column("input_reference_arn", sa.String(256), nullable=False),  # the Entity Resolution ID namespace
    sa.Column("namespace_type", sa.String(8), nullable=False),  # SOURCE | TARGET
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    # description, inputReferenceConfig, inputReferenceProperties, idMappingConfig (as the outputs give them)
    sa.Column("doc", JSONDoc, nullable=False),
    sa.UniqueConstraint("collaboration_id", "input_reference_arn", name="uq_id_namespace_associations_reference"),
    sa.Index("ix_id_namespace_associations_membership", "membership_id", "seq"),
    sa.Index("ix_id_namespace_associations_collaboration", "collaboration_id", "seq"),
)

id_mapping_tables = sa.Table(
    "id_mapping_tables",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("name_key", sa.String(128), nullable=False),  # lower case: the relation name queries use
    sa.Column("arn", sa.String(200), nullable=False),
    sa.Column("source_association_id", sa.String(36), sa.ForeignKey("id_namespace_associations.id"),
              nullable=False),
    sa.Column("target_association_id", sa.String(36), sa.ForeignKey("id_namespace_associations.id"),
              nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    # description, inputReferenceConfig, inputReferenceProperties, kmsKeyArn (as the outputs give them)
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("job_id", sa.String(36), nullable=True),  # the last population job
    sa.Column("job_status", sa.String(16), nullable=True),  # RUNNING | SUCCEEDED | FAILED
    sa.Column("job_time", sa.Float, nullable=True),  # when it started (RUNNING) or ended
    sa.Column("job_message", sa.Text, nullable=True),  # FAILED: why
    sa.Column("data_location", sa.Text, nullable=True),  # the mapping of the last successful job
    sa.Column("row_count", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("collaboration_id", "name_key", name="uq_id_mapping_tables_collaboration_name"),
    sa.Index("ix_id_mapping_tables_membership", "membership_id", "seq"),
    sa.Index("ix_id_mapping_tables_collaboration", "collaboration_id", "seq"),
)

TABLES: list[sa.Table] = [id_namespace_associations, id_mapping_tables]

N = id_namespace_associations
M = id_mapping_tables

_N_WITH_COLLABORATION = sa.select(N, C.c.arn.label("collaboration_arn")).select_from(
    N.join(C, C.c.id == N.c.collaboration_id))
_M_WITH_COLLABORATION = sa.select(M, C.c.arn.label("collaboration_arn")).select_from(
    M.join(C, C.c.id == M.c.collaboration_id))


# ------------------------------------------------------------------------------------------------ associations


def insert_association(conn: sa.Connection, row: dict) -> None:
    """Raises DuplicateError when the namespace is already associated with the collaboration."""
    conn.execute(N.insert().values(**row))


def get_association(conn: sa.Connection, membership_id: str, association_id: str):
    """The membership's association, or None (another membership's, like an unknown id)."""
    return conn.execute(
        _N_WITH_COLLABORATION.where(N.c.id == association_id, N.c.membership_id == membership_id)
    ).mappings().first()


def get_collaboration_association(conn: sa.Connection, collaboration_id: str, association_id: str):
    return conn.execute(
        _N_WITH_COLLABORATION.where(N.c.id == association_id, N.c.collaboration_id == collaboration_id)
    ).mappings().first()


def association_for_reference(conn: sa.Connection, collaboration_id: str, reference_arn: str):
    return conn.execute(
        _N_WITH_COLLABORATION.where(N.c.collaboration_id == collaboration_id,
                                    N.c.input_reference_arn == reference_arn)
    ).mappings().first()


def get_owned_association(conn: sa.Connection, region: str, account_id: str, membership_id: str,
                          association_id: str):
    return conn.execute(
        sa.select(N.c.id).where(N.c.id == association_id, N.c.membership_id == membership_id,
                                N.c.region == region, N.c.account_id == account_id)
    ).first()


def update_association(conn: sa.Connection, association_id: str, **values) -> None:
    conn.execute(N.update().where(N.c.id == association_id).values(**values))


def delete_association(conn: sa.Connection, association_id: str) -> None:
    conn.execute(N.delete().where(N.c.id == association_id))


def count_associations(conn: sa.Connection, membership_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).where(N.c.membership_id == membership_id)).scalar_one()


_N_PAGE = KeysetQuery(_N_WITH_COLLABORATION, N.c.seq,
                      {"membership_id": N.c.membership_id, "collaboration_id": N.c.collaboration_id})


def page_associations(conn: sa.Connection, after: int | None, limit: int, *, membership_id: str | None = None,
                      collaboration_id: str | None = None):
    rows, last = _N_PAGE.fetch(conn, after, limit, membership_id=membership_id, collaboration_id=collaboration_id)
    return [row._mapping for row in rows], last


# ------------------------------------------------------------------------------------------------ mapping tables


def insert_table(conn: sa.Connection, row: dict) -> None:
    """Raises DuplicateError when the name is taken in the collaboration."""
    conn.execute(M.insert().values(**row))


def get_table(conn: sa.Connection, membership_id: str, table_id: str):
    return conn.execute(
        _M_WITH_COLLABORATION.where(M.c.id == table_id, M.c.membership_id == membership_id)
    ).mappings().first()


def get_owned_table(conn: sa.Connection, region: str, account_id: str, membership_id: str, table_id: str):
    return conn.execute(
        sa.select(M.c.id).where(M.c.id == table_id, M.c.membership_id == membership_id, M.c.region == region,
                                M.c.account_id == account_id)
    ).first()


def name_taken(conn: sa.Connection, collaboration_id: str, name_key: str) -> bool:
    return conn.execute(
        sa.select(M.c.id).where(M.c.collaboration_id == collaboration_id, M.c.name_key == name_key)
    ).first() is not None


def tables_using(conn: sa.Connection, association_id: str) -> list[str]:
    """Names of the ID mapping tables whose source or target is that association."""
    return list(conn.execute(
        sa.select(M.c.name).where(sa.or_(M.c.source_association_id == association_id,
                                         M.c.target_association_id == association_id))
    ).scalars())


def update_table(conn: sa.Connection, table_id: str, **values) -> None:
    conn.execute(M.update().where(M.c.id == table_id).values(**values))


def claim_job(conn: sa.Connection, table_id: str, job_id: str, now: float, stale_before: float) -> bool:
    """Mark a population job RUNNING unless another one runs (and is not stale); True when claimed."""
    result = conn.execute(
        M.update().where(M.c.id == table_id,
                         sa.or_(M.c.job_status.is_(None), M.c.job_status != "RUNNING", M.c.job_time < stale_before))
        .values(job_id=job_id, job_status="RUNNING", job_time=now, job_message=None))
    return result.rowcount == 1


def finish_job(conn: sa.Connection, table_id: str, job_id: str, **values) -> bool:
    """Record the end of that job, if it is still the table's job; True when recorded."""
    result = conn.execute(M.update().where(M.c.id == table_id, M.c.job_id == job_id).values(**values))
    return result.rowcount == 1


def delete_table(conn: sa.Connection, table_id: str) -> None:
    conn.execute(M.delete().where(M.c.id == table_id))


def count_tables(conn: sa.Connection, membership_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).where(M.c.membership_id == membership_id)).scalar_one()


_M_PAGE = KeysetQuery(_M_WITH_COLLABORATION, M.c.seq, {"membership_id": M.c.membership_id})


def page_tables(conn: sa.Connection, membership_id: str, after: int | None, limit: int):
    rows, last = _M_PAGE.fetch(conn, after, limit, membership_id=membership_id)
    return [row._mapping for row in rows], last


# ------------------------------------------------------------------------------------------------ schemas

# An ID mapping table as a relation of its collaboration: only while its creator's membership is ACTIVE.
_SCHEMA = _M_WITH_COLLABORATION.join_from(M, MS, sa.and_(MS.c.id == M.c.membership_id, MS.c.status == "ACTIVE"))
_SCHEMA_PAGE = KeysetQuery(_SCHEMA, M.c.seq, {"collaboration_id": M.c.collaboration_id})


def schema_by_name(conn: sa.Connection, collaboration_id: str, name_key: str):
    return conn.execute(
        _SCHEMA.where(M.c.collaboration_id == collaboration_id, M.c.name_key == name_key)
    ).mappings().first()


def schemas_by_names(conn: sa.Connection, collaboration_id: str, name_keys: list[str]) -> dict:
    rows = conn.execute(
        _SCHEMA.where(M.c.collaboration_id == collaboration_id, M.c.name_key.in_(name_keys))
    ).mappings().all()
    return {row["name_key"]: row for row in rows}


def page_schemas(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int):
    rows, last = _SCHEMA_PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id)
    return [row._mapping for row in rows], last


def associations_by_ids(conn: sa.Connection, ids: list[str]) -> dict:
    rows = conn.execute(sa.select(N).where(N.c.id.in_(ids))).mappings().all()
    return {row["id"]: row for row in rows}
