"""The storage shape protected queries and protected jobs share (storage/protected_queries.py,
storage/protected_jobs.py): a run table (output-shaped `doc`, the runner's `spec`, the claiming runner and its
lease) and a view table with a row per membership that may see a run. Status changes are conditional updates
(`WHERE status IN (...)`), so exactly one runner claims a run and a finished run never changes again. Both
families get their tables and functions from here so that the runner, which calls the same functions on both
stores, meets the same behaviour in each; each family keeps its own table names, indexes and extras."""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage.keyset import KeysetQuery
from opencleanrooms.storage.schema import JSONDoc, Seq, metadata

ACTIVE_STATUSES = ("SUBMITTED", "STARTED", "CANCELLING")
RUNNING_STATUSES = ("STARTED", "CANCELLING")


def run_table(name: str, *indexes: sa.Index) -> sa.Table:
    """A run table `name` (runs outlive memberships, so membership ids carry no foreign key)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),  # the member who started it
        sa.Column("collaboration_id", sa.String(36), sa.ForeignKey("collaborations.id"), nullable=False),
        sa.Column("membership_id", sa.String(36), nullable=False),  # no foreign key: a run outlives a membership
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("create_time", sa.Float, nullable=False),
        sa.Column("update_time", sa.Float, nullable=False),
        sa.Column("doc", JSONDoc, nullable=False),
        sa.Column("spec", JSONDoc, nullable=False),
        sa.Column("runner", sa.String(64), nullable=True),  # the runner that claimed it
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Index(f"ix_{name}_status", "status", "seq"),
        *indexes,
    )


def view_table(name: str, run: sa.Table, seq_column: str) -> sa.Table:
    """One row per membership that sees a run of `run`: its runner's and each result receiver's."""
    return sa.Table(
        name,
        metadata,
        sa.Column("membership_id", sa.String(36), primary_key=True),
        sa.Column(seq_column, sa.BigInteger, sa.ForeignKey(f"{run.name}.seq"), primary_key=True),
    )


class Runs:
    """The functions on a run table and its view table that do not depend on which kind of run it is."""

    def __init__(self, run: sa.Table, views: sa.Table, seq_column: str):
        self.run, self.views, self.view_seq = run, views, views.c[seq_column]
        self.page = KeysetQuery(
            sa.select(run.c.seq, run.c.id, run.c.region, run.c.account_id, run.c.membership_id, run.c.create_time,
                      run.c.status, run.c.doc)
            .select_from(views.join(run, run.c.seq == self.view_seq)),
            run.c.seq, {"membership_id": views.c.membership_id, "status": run.c.status})

    def insert(self, conn: sa.Connection, row: dict, viewers: list[str]) -> int:
        """A new run, visible to `viewers` (membership ids)."""
        seq = conn.execute(self.run.insert().values(**row)).inserted_primary_key[0]
        conn.execute(self.views.insert(), [{"membership_id": m, self.view_seq.name: seq}
                                           for m in dict.fromkeys(viewers)])
        return seq

    def get_visible(self, conn: sa.Connection, membership_id: str, run_id: str):
        """The run if that membership may see it, else None."""
        run = self.run
        return conn.execute(
            sa.select(run).select_from(self.views.join(run, run.c.seq == self.view_seq))
            .where(self.views.c.membership_id == membership_id, run.c.id == run_id)
        ).mappings().first()

    def get(self, conn: sa.Connection, run_id: str):
        return conn.execute(sa.select(self.run).where(self.run.c.id == run_id)).mappings().first()

    def page_for_membership(self, conn: sa.Connection, membership_id: str, status: str | None, after: int | None,
                            limit: int):
        """The runs the membership sees, newest first."""
        return self.page.fetch(conn, after, limit, membership_id=membership_id, status=status)

    def count_active(self, conn: sa.Connection, *, account_id: str | None = None,
                     membership_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(self.run).where(self.run.c.status.in_(ACTIVE_STATUSES))
        if account_id is not None:
            query = query.where(self.run.c.account_id == account_id)
        if membership_id is not None:
            query = query.where(self.run.c.membership_id == membership_id)
        return conn.execute(query).scalar_one()

    def transition(self, conn: sa.Connection, run_id: str, from_statuses, status: str, now: float, *,
                   doc: dict | None = None, **values) -> bool:
        """Move the run to `status` if it is in one of `from_statuses`; True when this call made the change."""
        changes = dict(values, status=status, update_time=now)
        if doc is not None:
            changes["doc"] = doc
        run = self.run
        return conn.execute(
            run.update().where(run.c.id == run_id, run.c.status.in_(tuple(from_statuses))).values(**changes)
        ).rowcount == 1

    def claimable(self, conn: sa.Connection, limit: int) -> list[str]:
        """Ids of the oldest SUBMITTED runs."""
        run = self.run
        return list(conn.execute(
            sa.select(run.c.id).where(run.c.status == "SUBMITTED").order_by(run.c.seq).limit(limit)).scalars())

    def renew_leases(self, conn: sa.Connection, run_ids: list[str], lease_until: float) -> list[str]:
        """Extend the leases of running runs; returns those whose cancellation was asked for."""
        if not run_ids:
            return []
        run = self.run
        conn.execute(run.update().where(run.c.id.in_(run_ids), run.c.status.in_(RUNNING_STATUSES))
                     .values(lease_until=lease_until))
        return list(conn.execute(
            sa.select(run.c.id).where(run.c.id.in_(run_ids), run.c.status == "CANCELLING")).scalars())

    def abandoned(self, conn: sa.Connection, now: float) -> list[str]:
        """Running runs whose runner stopped renewing the lease."""
        run = self.run
        return list(conn.execute(
            sa.select(run.c.id).where(run.c.status.in_(RUNNING_STATUSES), run.c.lease_until < now)).scalars())
