"""Storage for privacy budget templates and the budgets they set (tables and queries). Created by migration 6.

A template belongs to the membership that created it and sets one budget of the collaboration: the differential
privacy budget (at most one per collaboration) or the access budget of one configured table association (at most
one per association). A unique key on (collaboration, type, resource) keeps it so between concurrent writers; the
resource is "" for differential privacy and the association id for access budgets.

The budget's ledger (what has been spent, and since when) sits in the template's row, in `ledger`, so that a spend
is one row update inside the protected query's write transaction: SQLite's writer lock (or the row lock taken by
`for_spending` elsewhere) serialises spends, and a crash either keeps both the query and its spend or neither.
The template summaries (which never change with spending) are kept pre-encoded; budgets are rendered when read.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.configured_tables import configured_table_analysis_rules as R
from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata
from opencleanrooms.storage.schema import collaborations as C
from opencleanrooms.storage.table_associations import configured_table_associations as A

DIFFERENTIAL_PRIVACY, ACCESS_BUDGET = "DIFFERENTIAL_PRIVACY", "ACCESS_BUDGET"

privacy_budget_templates = sa.Table(
    "privacy_budget_templates",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),  # the creating membership's owner
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("membership_id", sa.String(36), sa.ForeignKey("memberships.id"), nullable=False),
    sa.Column("arn", sa.String(200), nullable=False),
    sa.Column("budget_type", sa.String(32), nullable=False),  # DIFFERENTIAL_PRIVACY | ACCESS_BUDGET
    sa.Column("resource_key", sa.String(36), nullable=False),  # "" or the budgeted association's id
    sa.Column("auto_refresh", sa.String(16), nullable=False),  # CALENDAR_MONTH | NONE
    sa.Column("doc", JSONDoc, nullable=False),  # PrivacyBudgetTemplateParametersOutput
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("budget_id", sa.String(36), nullable=False),  # the PrivacyBudgetSummary id
    sa.Column("budget_set_at", sa.Float, nullable=False),  # when the ledger was last reset
    sa.Column("budget_update_time", sa.Float, nullable=False),  # the budget's updateTime (last spend or change)
    sa.Column("ledger", JSONDoc, nullable=False),  # privacy.budgets' ledger for the type
    sa.Column("summary", sa.Text, nullable=True),  # the PrivacyBudgetTemplateSummary, encoded as JSON
    sa.Column("collaboration_summary", sa.Text, nullable=True),  # the CollaborationPrivacyBudgetTemplateSummary
    sa.UniqueConstraint("collaboration_id", "budget_type", "resource_key",
                        name="uq_privacy_budget_templates_resource"),
    sa.Index("ix_privacy_budget_templates_collaboration", "collaboration_id", "seq"),
    sa.Index("ix_privacy_budget_templates_collaboration_type", "collaboration_id", "budget_type", "seq"),
    sa.Index("ix_privacy_budget_templates_membership", "membership_id", "seq"),
)

TABLES: list[sa.Table] = [privacy_budget_templates]  # every table this module defines, in creation order

P = privacy_budget_templates

_JOINED = sa.select(P, C.c.arn.label("collaboration_arn")).select_from(P.join(C, C.c.id == P.c.collaboration_id))


def insert(conn: sa.Connection, row: dict) -> None:
    """Raises DuplicateError (from the write transaction) when the collaboration already has that budget."""
    conn.execute(P.insert().values(**row))


def get(conn: sa.Connection, collaboration_id: str, template_id: str):
    """The collaboration's template (joined), or None."""
    return conn.execute(
        _JOINED.where(P.c.id == template_id, P.c.collaboration_id == collaboration_id)).mappings().first()


def get_owned(conn: sa.Connection, region: str, account_id: str, template_id: str):
    """The template if that account created it in that region, or None."""
    return conn.execute(sa.select(P.c.id).where(P.c.id == template_id, P.c.region == region,
                                                P.c.account_id == account_id)).first()


def existing(conn: sa.Connection, collaboration_id: str, budget_type: str, resource_key: str):
    """The id of the template already setting that budget, or None."""
    return conn.execute(sa.select(P.c.id).where(
        P.c.collaboration_id == collaboration_id, P.c.budget_type == budget_type,
        P.c.resource_key == resource_key)).scalar()


def has_differential_privacy_template(conn: sa.Connection, collaboration_id: str) -> bool:
    """Whether the collaboration has a differential privacy policy (what schema status asks)."""
    return existing(conn, collaboration_id, DIFFERENTIAL_PRIVACY, "") is not None


def for_spending(conn: sa.Connection, collaboration_id: str, budget_type: str, resource_keys: list[str]) -> list:
    """The templates that set these budgets, locked for update where the database locks rows."""
    return conn.execute(
        sa.select(P).where(P.c.collaboration_id == collaboration_id, P.c.budget_type == budget_type,
                           P.c.resource_key.in_(resource_keys)).with_for_update()).mappings().all()


def count_for_membership(conn: sa.Connection, membership_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).where(P.c.membership_id == membership_id)).scalar_one()


def update(conn: sa.Connection, template_id: str, **values) -> None:
    conn.execute(P.update().where(P.c.id == template_id).values(**values))


def delete(conn: sa.Connection, template_id: str) -> None:
    conn.execute(P.delete().where(P.c.id == template_id))


def private_table_rules(conn: sa.Connection, membership_id: str) -> list:
    """The CUSTOM analysis-rule policies of the configured tables this membership has associated."""
    return conn.execute(
        sa.select(R.c.policy).select_from(A.join(R, R.c.configured_table_id == A.c.configured_table_id))
        .where(A.c.membership_id == membership_id, R.c.type == "CUSTOM")).scalars().all()


_TEMPLATE_PAGE = KeysetQuery(sa.select(P.c.seq, P.c.summary), P.c.seq,
                             {"collaboration_id": P.c.collaboration_id, "membership_id": P.c.membership_id})
_COLLABORATION_PAGE = KeysetQuery(sa.select(P.c.seq, P.c.collaboration_summary), P.c.seq,
                                  {"collaboration_id": P.c.collaboration_id})
_BUDGET_PAGE = KeysetQuery(_JOINED, P.c.seq, {"collaboration_id": P.c.collaboration_id,
                                              "membership_id": P.c.membership_id,
                                              "budget_type": P.c.budget_type, "resource_key": P.c.resource_key})


def page_templates(conn: sa.Connection, after: int | None, limit: int, *, collaboration_id: str | None = None,
                   membership_id: str | None = None):
    """Templates, newest first, as (seq, pre-encoded PrivacyBudgetTemplateSummary) rows."""
    return _TEMPLATE_PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id, membership_id=membership_id)


def page_collaboration_templates(conn: sa.Connection, collaboration_id: str, after: int | None, limit: int):
    """The collaboration's templates, newest first, as (seq, pre-encoded CollaborationPrivacyBudgetTemplateSummary)
    rows."""
    return _COLLABORATION_PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id)


def page_budgets(conn: sa.Connection, budget_type: str, after: int | None, limit: int, *,
                 collaboration_id: str | None = None, membership_id: str | None = None,
                 resource_key: str | None = None):
    """Templates (joined) of one type, newest first, to render as budgets."""
    rows, last = _BUDGET_PAGE.fetch(conn, after, limit, collaboration_id=collaboration_id,
                                    membership_id=membership_id, budget_type=budget_type, resource_key=resource_key)
    return [row._mapping for row in rows], last


def all_templates(conn: sa.Connection, collaboration_id: str | None = None) -> list:
    """Every template (joined with its collaboration's ARN and name), by collaboration then age: the operator's
    view (`opencleanrooms budgets`)."""
    query = (sa.select(P, C.c.arn.label("collaboration_arn"), C.c.name.label("collaboration_name"))
             .select_from(P.join(C, C.c.id == P.c.collaboration_id)).order_by(C.c.seq, P.c.seq))
    if collaboration_id is not None:
        query = query.where(P.c.collaboration_id == collaboration_id)
    return [row._mapping for row in conn.execute(query)]
