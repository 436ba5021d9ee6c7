"""Storage for the configured tables family (tables and queries). Tables are created by migration 4.

A configured table belongs to one account in one region. Its output-shaped fields (description, tableReference,
allowedColumns, analysisMethod, selectedAnalysisMethods) sit in `doc`; the ConfiguredTableSummary that
ListConfiguredTables returns is kept pre-encoded in `summary` and rewritten by every write that changes it (the
service calls `set_summary` in the same transaction). A table has at most one analysis rule, which the unique key
on `configured_table_id` guarantees even between concurrent writers.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata

configured_tables = sa.Table(
    "configured_tables",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("arn", sa.String(200), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("summary", sa.Text, nullable=True),  # the ConfiguredTableSummary, encoded as JSON
    sa.Index("ix_configured_tables_account", "region", "account_id", "seq"),
)

# The configured table's own analysis rule (the account-level one; associations have their own).
configured_table_analysis_rules = sa.Table(
    "configured_table_analysis_rules",
    metadata,
    sa.Column("configured_table_id", sa.String(36), sa.ForeignKey("configured_tables.id"), primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),  # AGGREGATION | LIST | CUSTOM
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("policy", JSONDoc, nullable=False),  # ConfiguredTableAnalysisRulePolicy, as given
)

TABLES: list[sa.Table] = [configured_tables, configured_table_analysis_rules]  # in creation order

T = configured_tables
R = configured_table_analysis_rules

# A configured table with the type of its analysis rule (NULL when it has none).
_WITH_RULE_TYPE = sa.select(T, R.c.type.label("rule_type")).select_from(
    T.outerjoin(R, R.c.configured_table_id == T.c.id))


def insert(conn: sa.Connection, row: dict) -> int:
    return conn.execute(T.insert().values(**row)).inserted_primary_key[0]


def get(conn: sa.Connection, region: str, account_id: str, configured_table_id: str):
    """The account's configured table in that region (with `rule_type`), or None: another account's table, like
    an unknown id, is None."""
    return conn.execute(
        _WITH_RULE_TYPE.where(T.c.id == configured_table_id, T.c.region == region, T.c.account_id == account_id)
    ).mappings().first()


def get_any(conn: sa.Connection, configured_table_id: str):
    """The configured table whatever its owner (with `rule_type`), or None; for families that reach a table
    through something else (an association), never for a caller's own lookups."""
    return conn.execute(_WITH_RULE_TYPE.where(T.c.id == configured_table_id)).mappings().first()


def count_for_account(conn: sa.Connection, region: str, account_id: str) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(T.c.region == region, T.c.account_id == account_id)
    ).scalar_one()


def update(conn: sa.Connection, configured_table_id: str, **values) -> None:
    conn.execute(T.update().where(T.c.id == configured_table_id).values(**values))


def set_summary(conn: sa.Connection, configured_table_id: str, summary: str) -> None:
    conn.execute(T.update().where(T.c.id == configured_table_id).values(summary=summary))


def delete(conn: sa.Connection, configured_table_id: str) -> None:
    """The table and its analysis rule."""
    conn.execute(R.delete().where(R.c.configured_table_id == configured_table_id))
    conn.execute(T.delete().where(T.c.id == configured_table_id))


_ACCOUNT_PAGE = KeysetQuery(sa.select(T.c.seq, T.c.summary), T.c.seq,
                            {"region": T.c.region, "account_id": T.c.account_id})


def page_for_account(conn: sa.Connection, region: str, account_id: str, after: int | None, limit: int):
    """The account's configured tables, newest first, as (seq, pre-encoded summary) rows."""
    return _ACCOUNT_PAGE.fetch(conn, after, limit, region=region, account_id=account_id)


# ------------------------------------------------------------------------------------------------ analysis rules


def get_rule(conn: sa.Connection, configured_table_id: str):
    """The configured table's analysis rule, or None."""
    return conn.execute(sa.select(R).where(R.c.configured_table_id == configured_table_id)).mappings().first()


def insert_rule(conn: sa.Connection, row: dict) -> None:
    """Raises DuplicateError (from the write transaction) when the table already has a rule."""
    conn.execute(R.insert().values(**row))


def update_rule(conn: sa.Connection, configured_table_id: str, **values) -> None:
    conn.execute(R.update().where(R.c.configured_table_id == configured_table_id).values(**values))


def delete_rule(conn: sa.Connection, configured_table_id: str) -> None:
    conn.execute(R.delete().where(R.c.configured_table_id == configured_table_id))
