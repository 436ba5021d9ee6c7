"""Table definitions (SQLAlchemy Core), one group per resource family.

Keys, filters and sort keys are real columns; the rest of a resource's output-shaped fields sit in a JSON `doc`
column. What list calls return is also kept pre-encoded in a `summary` column, so that a page is read and sent
without decoding or encoding JSON. Every list is ordered by an integer `seq` (assigned at insert, never reused) so that pages are keyset
ranges on an index and cost the same however many rows are stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

server_state = sa.Table(
    "server_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("access_key_id", sa.String(128), primary_key=True),
    sa.Column("secret_access_key", sa.String(128), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("is_demo", sa.Boolean, nullable=False, default=False),
    sa.Column("create_time", sa.Float, nullable=False),
)

collaborations = sa.Table(
    "collaborations",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("arn", sa.String(200), nullable=False),
    sa.Column("creator_account_id", sa.String(12), nullable=False),
    sa.Column("creator_display_name", sa.String(100), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Index("ix_collaborations_creator", "region", "creator_account_id", "deleted"),
)

# One row per account invited to a collaboration (the creator included): the member status and abilities.
members = sa.Table(
    "members",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("collaboration_seq", sa.BigInteger, nullable=False),  # list order of the caller's collaborations
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("listed", sa.Boolean, nullable=False),  # false once the collaboration is deleted
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("membership_id", sa.String(36), nullable=True),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),  # abilities, mlAbilities, paymentConfiguration
    # The CollaborationSummary this member sees, encoded as JSON; kept current by every write (migration 3).
    sa.Column("summary", sa.Text, nullable=True),
    sa.UniqueConstraint("collaboration_id", "account_id", name="uq_members_collaboration_account"),
    sa.Index("ix_members_account", "region", "account_id", "listed", "collaboration_seq"),
    sa.Index("ix_members_account_status", "region", "account_id", "listed", "status", "collaboration_seq"),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("arn", sa.String(200), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("summary", sa.Text, nullable=True),  # the MembershipSummary, encoded as JSON (migration 3)
    sa.UniqueConstraint("collaboration_id", "account_id", name="uq_memberships_collaboration_account"),
    sa.Index("ix_memberships_account", "region", "account_id", "seq"),
    sa.Index("ix_memberships_account_status", "region", "account_id", "status", "seq"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("resource_arn", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)
