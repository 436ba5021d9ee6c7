"""Storage for the analysis templates family (tables and queries). Tables are created by migration 4.

An analysis template belongs to one membership (and so to one account and one collaboration). Its output-shaped
fields (description, format, source, analysisParameters, schema, sourceMetadata, errorMessageConfiguration,
syntheticDataParameters) sit in `doc`. Two pre-encoded summaries are kept next to it, rewritten by every write that
changes them (the service calls `set_summaries` in the same transaction): the AnalysisTemplateSummary that
ListAnalysisTemplates returns to the owner, and the CollaborationAnalysisTemplateSummary that
ListCollaborationAnalysisTemplates returns to every member. A unique key keeps a name to one template per
membership, even between concurrent writers.

Collaboration-wide reads (`*_in_collaboration`, `page_for_collaboration`) see only templates of ACTIVE memberships:
a removed member's templates leave the collaboration with it, as its associations do.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata
from opencleanrooms.storage.schema import collaborations as C
from opencleanrooms.storage.schema import memberships as MS

analysis_templates = sa.Table(
    "analysis_templates",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),  # the membership's owner, the template's creator
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),  # as given
    sa.Column("arn", sa.String(200), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("summary", sa.Text, nullable=True),  # the AnalysisTemplateSummary, encoded as JSON
    sa.Column("collaboration_summary", sa.Text, nullable=True),  # the CollaborationAnalysisTemplateSummary
    sa.UniqueConstraint("membership_id", "name", name="uq_analysis_templates_membership_name"),
    sa.Index("ix_analysis_templates_membership", "membership_id", "seq"),
    sa.Index("ix_analysis_templates_collaboration", "collaboration_id", "seq"),
)

TABLES: list[sa.Table] = [analysis_templates]  # every table this module defines, in creation order

T = analysis_templates

# A template with what its outputs show of the collaboration, and whether its membership is ACTIVE.
_JOINED = (
    sa.select(T, C.c.arn.label("collaboration_arn"), C.c.doc.label("collaboration_doc"),
              MS.c.status.label("membership_status"))
    .select_from(T.join(C, C.c.id == T.c.collaboration_id).join(MS, MS.c.id == T.c.membership_id))
)


def insert(conn: sa.Connection, row: dict) -> int:
    """Raises DuplicateError (from the write transaction) when the membership already has a template of that
    name."""
    return conn.execute(T.insert().values(**row)).inserted_primary_key[0]


def get(conn: sa.Connection, membership_id: str, template_id: str):
    """The membership's template (joined), or None: one of another membership, like an unknown id, is None."""
    return conn.execute(
        _JOINED.where(T.c.id == template_id, T.c.membership_id == membership_id)
    ).mappings().first()


def get_owned(conn: sa.Connection, region: str, account_id: str, membership_id: str, template_id: str):
    """The template if it belongs to that membership of that account in that region, or None."""
    return conn.execute(
        sa.select(T.c.id).where(T.c.id == template_id, T.c.membership_id == membership_id, T.c.region == region,
                                T.c.account_id == account_id)
    ).first()


def name_taken(conn: sa.Connection, membership_id: str, name: str) -> bool:
    return conn.execute(
        sa.select(T.c.id).where(T.c.membership_id == membership_id, T.c.name == name)
    ).first() is not None


def count_for_membership(conn: sa.Connection, membership_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).where(T.c.membership_id == membership_id)).scalar_one()


def update(conn: sa.Connection, template_id: str, **values) -> None:
    conn.execute(T.update().where(T.c.id == template_id).values(**values))


def set_summaries(conn: sa.Connection, template_id: str, summary: str, collaboration_summary: str) -> None:
    conn.execute(T.update().where(T.c.id == template_id).values(summary=summary,
                                                                collaboration_summary=collaboration_summary))


def delete(conn: sa.Connection, template_id: str) -> None:
    conn.execute(T.delete().where(T.c.id == template_id))


def by_arns_in_collaboration(conn: sa.Connection, collaboration_id: str, template_arns: list[str]) -> dict:
    """arn -> template (joined), for those of the ARNs that are templates of ACTIVE memberships of the
    collaboration."""
    rows = conn.execute(
        _JOINED.where(T.c.arn.in_(template_arns), T.c.collaboration_id == collaboration_id,
                      MS.c.status == "ACTIVE")
    ).mappings().all()
    return {row["arn"]: row for row in rows}


_MEMBERSHIP_PAGE = KeysetQuery(sa.select(T.c.seq, T.c.summary), T.c.seq, {"membership_id": T.c.membership_id})
_COLLABORATION_PAGE = KeysetQuery(
    sa.select(T.c.seq, T.c.collaboration_summary)
    .select_from(T.join(MS, sa.and_(MS.c.id == T.c.membership_id, MS.c.status == "ACTIVE"))),
    T.c.seq, {"collaboration_id": T.c.collaboration_id})


def page_for_membership(conn: sa.Connection, membership_id: str, after: int | None, limit: int):
    """The membership's templates, newest first, as (seq, pre-encoded AnalysisTemplateSummary) rows."""
    return _MEMBERSHIP_PAGE.fetch(conn, after, limit, membership_id=membership_id)


def page_for_collaboration(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int):
    """The templates of the collaboration's ACTIVE memberships, newest first, as (seq, pre-encoded
    CollaborationAnalysisTemplateSummary) rows."""
    return _COLLABORATION_PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id)
