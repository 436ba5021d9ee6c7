"""Opens the database, migrates its schema, and hands out read and write transactions.

SQLite (the embedded default) runs in WAL mode; writers take the lock up front with BEGIN IMMEDIATE and wait on
`busy_timeout`, so concurrent writers from several processes queue instead of failing with "database is locked".
`synchronous=FULL` makes every acknowledged commit durable. Other backends (PostgreSQL) use their native
transactions; nothing above this module sees the difference.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from opencleanrooms.storage import schema, server_state

BUSY_TIMEOUT_MS = 30_000


def _create_catalog_tables(conn: sa.Connection) -> None:
    from opencleanrooms.catalog.store import create_table

    create_table(conn)


SUMMARIES_BACKFILL = "backfill:list-summaries"  # set when rows exist whose summaries must be computed


def _add_summary_columns(conn: sa.Connection) -> None:
    """Pre-encoded list summaries; rows that predate them are filled in by the services at start-up.

    Step 1 creates tables from today's definitions, so a new database has the columns already.
    """
    inspector = sa.inspect(conn)
    for table in ("members", "memberships"):
        if "summary" not in {column["name"] for column in inspector.get_columns(table)}:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN summary TEXT"))
            server_state.put(conn, SUMMARIES_BACKFILL, "pending")


def _create_data_plane_tables(conn: sa.Connection) -> None:
    """Configured tables, associations, analysis templates and change requests, with their rules."""
    from opencleanrooms.storage import analysis_templates, change_requests, configured_tables, table_associations

    for module in (configured_tables, table_associations, analysis_templates, change_requests):
        for table in module.TABLES:
            table.create(conn, checkfirst=True)


def _create_protected_query_tables(conn: sa.Connection) -> None:
    """Protected queries, who sees them, and the query log."""
    from opencleanrooms.storage import protected_queries

    for table in protected_queries.TABLES:
        table.create(conn, checkfirst=True)


def _create_privacy_budget_tables(conn: sa.Connection) -> None:
    """Privacy budget templates and the ledgers of the budgets they set."""
    from opencleanrooms.storage import privacy_budgets

    for table in privacy_budgets.TABLES:
        table.create(conn, checkfirst=True)


# Each step takes the database from version N-1 to N; applied in order inside one write transaction.
MIGRATIONS = [
    lambda conn: schema.metadata.create_all(conn, tables=[
        schema.server_state, schema.credentials, schema.collaborations, schema.members, schema.memberships,
        schema.tags]),
    _create_catalog_tables,  # 2: the data catalog behind configured tables' Glue references
    _add_summary_columns,  # 3: pre-encoded list summaries
    _create_data_plane_tables,  # 4: what members contribute under rules
    _create_protected_query_tables,  # 5: protected queries
    _create_privacy_budget_tables,  # 6: privacy budget templates and budgets
]


class DuplicateError(Exception):
    """A unique key already exists (for example a second membership for the same account)."""


def sqlite_url(data_dir: str | os.PathLike) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'opencleanrooms.db'}"


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self._reader = _sqlite_engine(url, "BEGIN")
            self._writer = _sqlite_engine(url, "BEGIN IMMEDIATE")
        else:
            self._reader = self._writer = sa.create_engine(url, pool_pre_ping=True)

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self._reader.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction; unique-key violations surface as DuplicateError."""
        try:
            with self._writer.connect() as conn, conn.begin():
                yield conn
        except sa.exc.IntegrityError as exc:
            raise DuplicateError(str(exc.orig)) from None

    def migrate(self) -> int:
        """Bring the schema to the newest version; safe to run from several processes at once."""
        with self.write() as conn:
            schema.schema_version.create(conn, checkfirst=True)
            current = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar() or 0
            for version in range(current + 1, len(MIGRATIONS) + 1):
                MIGRATIONS[version - 1](conn)
                conn.execute(schema.schema_version.insert().values(version=version, applied_at=time.time()))
        return len(MIGRATIONS)

    def dispose(self) -> None:
        self._reader.dispose()
        self._writer.dispose()


def _sqlite_engine(url: str, begin_statement: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.connection.driver_connection.execute(begin_statement)  # straight to sqlite3: on every request

    return engine
