"""Storage for configured table associations and their collaboration analysis rules (tables and queries). Tables
are created by migration 4.

An association links one of a member's configured tables to the collaboration of one of its memberships, under a
name (the relation name queries use, stored in lower case). Unique keys keep a name, and a configured table, to one
association per collaboration, even between concurrent writers. The ConfiguredTableAssociationSummary that
ListConfiguredTableAssociations returns is kept pre-encoded in `summary`, rewritten by every write that changes it
(the service calls `set_summary` in the same transaction). An association has at most one collaboration analysis
rule (the primary key of the rules table).

Schemas are read through `schema_*`: an association joined with its membership (only ACTIVE memberships' associations
are relations of the collaboration), its configured table, the table's analysis rule and the association's rule.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.configured_tables import configured_table_analysis_rules as R
from opencleanrooms.storage.configured_tables import configured_tables as T
from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata
from opencleanrooms.storage.schema import collaborations as C
from opencleanrooms.storage.schema import memberships as MS

configured_table_associations = sa.Table(
    "configured_table_associations",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),  # the membership's (and the configured table's) owner
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), nullable=False),
    sa.Column("configured_table_id", sa.String(36), sa.ForeignKey("configured_tables.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),  # lower case
    sa.Column("arn", sa.String(200), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),  # description, roleArn
    sa.Column("summary", sa.Text, nullable=True),  # the ConfiguredTableAssociationSummary, encoded as JSON
    sa.UniqueConstraint("collaboration_id", "name", name="uq_table_associations_collaboration_name"),
    sa.UniqueConstraint("collaboration_id", "configured_table_id", name="uq_table_associations_collaboration_table"),
    sa.Index("ix_table_associations_membership", "membership_id", "seq"),
    sa.Index("ix_table_associations_collaboration", "collaboration_id", "seq"),
    sa.Index("ix_table_associations_configured_table", "configured_table_id"),
)

# The association's collaboration analysis rule (ConfiguredTableAssociationAnalysisRule).
configured_table_association_analysis_rules = sa.Table(
    "configured_table_association_analysis_rules",
    metadata,
    sa.Column("configured_table_association_id", sa.String(36), sa.ForeignKey("configured_table_associations.id"),
              primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),  # AGGREGATION | LIST | CUSTOM
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("policy", JSONDoc, nullable=False),  # ConfiguredTableAssociationAnalysisRulePolicy, as given
)

TABLES: list[sa.Table] = [configured_table_associations, configured_table_association_analysis_rules]

A = configured_table_associations
AR = configured_table_association_analysis_rules

# An association with the type of its collaboration analysis rule (NULL when it has none).
_WITH_RULE_TYPE = sa.select(A, AR.c.type.label("rule_type")).select_from(
    A.outerjoin(AR, AR.c.configured_table_association_id == A.c.id))


def insert(conn: sa.Connection, row: dict) -> int:
    """Raises DuplicateError (from the write transaction) when the name or the configured table is taken in the
    collaboration."""
    return conn.execute(A.insert().values(**row)).inserted_primary_key[0]


def get(conn: sa.Connection, membership_id: str, association_id: str):
    """The membership's association (with `rule_type`), or None: one of another membership, like an unknown id,
    is None."""
    return conn.execute(
        _WITH_RULE_TYPE.where(A.c.id == association_id, A.c.membership_id == membership_id)
    ).mappings().first()


def get_owned(conn: sa.Connection, region: str, account_id: str, membership_id: str, association_id: str):
    """The association if it belongs to that membership of that account in that region, or None."""
    return conn.execute(
        sa.select(A.c.id).where(A.c.id == association_id, A.c.membership_id == membership_id,
                                A.c.region == region, A.c.account_id == account_id)
    ).first()


def name_taken(conn: sa.Connection, collaboration_id: str, name: str) -> bool:
    return conn.execute(
        sa.select(A.c.id).where(A.c.collaboration_id == collaboration_id, A.c.name == name)
    ).first() is not None


def table_associated(conn: sa.Connection, collaboration_id: str, configured_table_id: str) -> bool:
    return conn.execute(
        sa.select(A.c.id).where(A.c.collaboration_id == collaboration_id,
                                A.c.configured_table_id == configured_table_id)
    ).first() is not None


def update(conn: sa.Connection, association_id: str, **values) -> None:
    conn.execute(A.update().where(A.c.id == association_id).values(**values))


def set_summary(conn: sa.Connection, association_id: str, summary: str) -> None:
    conn.execute(A.update().where(A.c.id == association_id).values(summary=summary))


def delete(conn: sa.Connection, association_id: str) -> None:
    """The association and its collaboration analysis rule."""
    conn.execute(AR.delete().where(AR.c.configured_table_association_id == association_id))
    conn.execute(A.delete().where(A.c.id == association_id))


def count_for_membership(conn: sa.Connection, membership_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).where(A.c.membership_id == membership_id)).scalar_one()


def count_for_configured_table(conn: sa.Connection, configured_table_id: str) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(A.c.configured_table_id == configured_table_id)
    ).scalar_one()


def count_rules_for_configured_table(conn: sa.Connection, configured_table_id: str, rule_type: str) -> int:
    """Associations of the configured table whose collaboration analysis rule has that type."""
    return conn.execute(
        sa.select(sa.func.count()).select_from(A.join(AR, AR.c.configured_table_association_id == A.c.id))
        .where(A.c.configured_table_id == configured_table_id, AR.c.type == rule_type)
    ).scalar_one()


_MEMBERSHIP_PAGE = KeysetQuery(sa.select(A.c.seq, A.c.summary), A.c.seq, {"membership_id": A.c.membership_id})


def page_for_membership(conn: sa.Connection, membership_id: str, after: int | None, limit: int):
    """The membership's associations, newest first, as (seq, pre-encoded summary) rows."""
    return _MEMBERSHIP_PAGE.fetch(conn, after, limit, membership_id=membership_id)


# ------------------------------------------------------------------------------------------------ rules


def get_rule(conn: sa.Connection, association_id: str):
    """The association's collaboration analysis rule, or None."""
    return conn.execute(
        sa.select(AR).where(AR.c.configured_table_association_id == association_id)
    ).mappings().first()


def insert_rule(conn: sa.Connection, row: dict) -> None:
    """Raises DuplicateError (from the write transaction) when the association already has a rule."""
    conn.execute(AR.insert().values(**row))


def update_rule(conn: sa.Connection, association_id: str, **values) -> None:
    conn.execute(AR.update().where(AR.c.configured_table_association_id == association_id).values(**values))


def delete_rule(conn: sa.Connection, association_id: str) -> None:
    conn.execute(AR.delete().where(AR.c.configured_table_association_id == association_id))


# ------------------------------------------------------------------------------------------------ schemas

# A relation of a collaboration: an association of an ACTIVE membership, with its configured table (`table_*`), the
# table's analysis rule (`table_rule_*`, NULL when it has none), the association's rule (`rule_*`, likewise) and
# the collaboration's ARN.
_SCHEMA = (
    sa.select(
        A.c.seq, A.c.id, A.c.region, A.c.account_id, A.c.collaboration_id, A.c.membership_id,
        A.c.configured_table_id, A.c.name, A.c.create_time, A.c.update_time, A.c.doc,
        C.c.arn.label("collaboration_arn"),
        T.c.region.label("table_region"), T.c.update_time.label("table_update_time"), T.c.doc.label("table_doc"),
        R.c.type.label("table_rule_type"), R.c.policy.label("table_rule_policy"),
        R.c.create_time.label("table_rule_create_time"), R.c.update_time.label("table_rule_update_time"),
        AR.c.type.label("rule_type"), AR.c.policy.label("rule_policy"),
        AR.c.create_time.label("rule_create_time"), AR.c.update_time.label("rule_update_time"),
    )
    .select_from(
        A.join(MS, sa.and_(MS.c.id == A.c.membership_id, MS.c.status == "ACTIVE"))
        .join(C, C.c.id == A.c.collaboration_id)
        .join(T, T.c.id == A.c.configured_table_id)
        .outerjoin(R, R.c.configured_table_id == T.c.id)
        .outerjoin(AR, AR.c.configured_table_association_id == A.c.id)
    )
)
_NAMES_PER_STATEMENT = 500  # bound parameters per statement stay well under every backend's limit
_SCHEMA_PAGE = KeysetQuery(_SCHEMA, A.c.seq, {"collaboration_id": A.c.collaboration_id})


def schema_by_name(conn: sa.Connection, collaboration_id: str, name: str):
    """The collaboration's relation with that (lower-case) name, or None."""
    return conn.execute(
        _SCHEMA.where(A.c.collaboration_id == collaboration_id, A.c.name == name)
    ).mappings().first()


def schemas_by_names(conn: sa.Connection, collaboration_id: str, names) -> dict:
    """name -> relation, for those of the (lower-case) names that exist: one statement per 500 names, however
    many relations the collaboration has (none for no names)."""
    names = sorted(set(names))
    found = {}
    for start in range(0, len(names), _NAMES_PER_STATEMENT):
        rows = conn.execute(_SCHEMA.where(A.c.collaboration_id == collaboration_id,
                                          A.c.name.in_(names[start:start + _NAMES_PER_STATEMENT]))).mappings()
        found.update((row["name"], row) for row in rows)
    return found


def page_schemas(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int):
    """The collaboration's relations, newest first."""
    rows, last = _SCHEMA_PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id)
    return [row._mapping for row in rows], last
