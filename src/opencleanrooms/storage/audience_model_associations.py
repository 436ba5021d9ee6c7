"""Storage for configured audience model associations (tables and queries). Tables are created by migration 10.

An association links a Clean Rooms ML configured audience model (by ARN; this server keeps no Clean Rooms ML
resources) to the collaboration of one of a member's memberships. A unique key keeps a configured audience model to
one association per collaboration, even between concurrent writers. Two pre-encoded summaries are kept next to each
row, rewritten by every write that changes them (the service calls `set_summaries` in the same transaction): the
ConfiguredAudienceModelAssociationSummary its owner lists, and the
CollaborationConfiguredAudienceModelAssociationSummary every member lists.

Collaboration-wide reads see only associations of ACTIVE memberships: a removed member's associations leave the
collaboration with it, as its table associations and analysis templates do.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata
from opencleanrooms.storage.schema import collaborations as C
from opencleanrooms.storage.schema import memberships as MS

configured_audience_model_associations = sa.Table(
    "configured_audience_model_associations",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),  # the membership's owner, the association's creator
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), nullable=False),
    sa.Column("model_arn", sa.String(2048), nullable=False),  # the configured audience model (ASCII by its pattern)
    sa.Column("name", sa.String(100), nullable=False),  # as given
    sa.Column("arn", sa.String(256), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),  # manageResourcePolicies, description
    sa.Column("summary", sa.Text, nullable=True),  # ConfiguredAudienceModelAssociationSummary, encoded
    sa.Column("collaboration_summary", sa.Text, nullable=True),  # CollaborationConfiguredAudienceModelAssociationSummary
    sa.UniqueConstraint("collaboration_id", "model_arn", name="uq_audience_model_associations_collaboration_model"),
    sa.Index("ix_audience_model_associations_membership", "membership_id", "seq"),
    sa.Index("ix_audience_model_associations_collaboration", "collaboration_id", "seq"),
)

TABLES: list[sa.Table] = [configured_audience_model_associations]

A = configured_audience_model_associations

# An association with its collaboration's ARN and whether its membership is ACTIVE.
_JOINED = (
    sa.select(A, C.c.arn.label("collaboration_arn"), MS.c.status.label("membership_status"))
    .select_from(A.join(C, C.c.id == A.c.collaboration_id).join(MS, MS.c.id == A.c.membership_id))
)


def insert(conn: sa.Connection, row: dict) -> None:
    """Raises DuplicateError (from the write transaction) when the model is already associated with the
    collaboration."""
    conn.execute(A.insert().values(**row))


def get(conn: sa.Connection, membership_id: str, association_id: str):
    """The membership's association (joined), or None: one of another membership, like an unknown id, is None."""
    return conn.execute(
        _JOINED.where(A.c.id == association_id, A.c.membership_id == membership_id)
    ).mappings().first()


def get_in_collaboration(conn: sa.Connection, collaboration_id: str, association_id: str):
    """The association (joined) if it belongs to an ACTIVE membership of the collaboration, else None."""
    return conn.execute(
        _JOINED.where(A.c.id == association_id, A.c.collaboration_id == collaboration_id, MS.c.status == "ACTIVE")
    ).mappings().first()


def get_owned(conn: sa.Connection, region: str, account_id: str, membership_id: str, association_id: str):
    """The association if it belongs to that membership of that account in that region, or None."""
    return conn.execute(
        sa.select(A.c.id).where(A.c.id == association_id, A.c.membership_id == membership_id,
                                A.c.region == region, A.c.account_id == account_id)
    ).first()


def model_associated(conn: sa.Connection, collaboration_id: str, model_arn: str) -> bool:
    return conn.execute(
        sa.select(A.c.id).where(A.c.collaboration_id == collaboration_id, A.c.model_arn == model_arn)
    ).first() is not None


def count_for_membership(conn: sa.Connection, membership_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).where(A.c.membership_id == membership_id)).scalar_one()


def update(conn: sa.Connection, association_id: str, **values) -> None:
    conn.execute(A.update().where(A.c.id == association_id).values(**values))


def set_summaries(conn: sa.Connection, association_id: str, summary: str, collaboration_summary: str) -> None:
    conn.execute(A.update().where(A.c.id == association_id).values(summary=summary,
                                                                   collaboration_summary=collaboration_summary))


def delete(conn: sa.Connection, association_id: str) -> None:
    conn.execute(A.delete().where(A.c.id == association_id))


_MEMBERSHIP_PAGE = KeysetQuery(sa.select(A.c.seq, A.c.summary), A.c.seq, {"membership_id": A.c.membership_id})
_COLLABORATION_PAGE = KeysetQuery(
    sa.select(A.c.seq, A.c.collaboration_summary)
    .select_from(A.join(MS, sa.and_(MS.c.id == A.c.membership_id, MS.c.status == "ACTIVE"))),
    A.c.seq, {"collaboration_id": A.c.collaboration_id})


def page_for_membership(conn: sa.Connection, membership_id: str, after: int | None, limit: int):
    """The membership's associations, newest first, as (seq, pre-encoded summary) rows."""
    return _MEMBERSHIP_PAGE.fetch(conn, after, limit, membership_id=membership_id)


def page_for_collaboration(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int):
    """The associations of the collaboration's ACTIVE memberships, newest first, as (seq, pre-encoded collaboration
    summary) rows."""
    return _COLLABORATION_PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id)
