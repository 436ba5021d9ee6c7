"""Opens the database, migrates its schema, and hands out read and write transactions.

SQLite (the embedded default) runs in WAL mode; writers take the lock up front with BEGIN IMMEDIATE and wait on
`busy_timeout`, so concurrent writers from several processes queue instead of failing with "database is locked".
`synchronous=FULL` makes every acknowledged commit durable.

PostgreSQL (`postgresql://` or `postgresql+psycopg://`, psycopg 3 from the `postgresql` extra) runs writers
concurrently at READ COMMITTED, so a write that must not interleave with another names what it serialises on:

    with db.write(locks=[("account", region, account_id), ("collaboration", collaboration_id)]) as conn:
        ...  # count, then insert: no other writer holding one of these keys runs in between

Each key becomes a transaction-scoped advisory lock (`pg_advisory_xact_lock` of a 64-bit hash of the key), taken
before anything else, in one fixed (sorted) order, and released at commit or rollback. Because every writer takes
all its locks first and in the same order, writers of one key queue instead of deadlocking, and a quota check
(count then insert) under the owner's key cannot be overrun by another process; and because the first statement
after the lock takes a fresh snapshot (READ COMMITTED), the count sees every write committed by the previous holder.
On SQLite the keys cost nothing: BEGIN IMMEDIATE already serialises every writer.

What locks cannot rule out (two writers touching the same rows in different orders without a shared key) ends in a
deadlock or serialization failure that PostgreSQL breaks by failing one transaction: `write()` raises
`RetryableError` for it (SQLSTATE 40P01, 40001), after rolling back; nothing was written, and the service layer
runs the whole operation again (services/registry.py).

Integrity errors are told apart: a unique key violation is `DuplicateError`; any other (a foreign key, a NOT NULL)
is `ConstraintViolation`, its base class, which is a defect, not something a caller caused.

Migrations run in one write transaction under the advisory lock `("migrate",)`, so several processes migrating at
once (replicas starting together, `opencleanrooms migrate` run twice) apply each step exactly once; PostgreSQL's
DDL is transactional, so a failed step leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
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


def _create_audience_model_and_log_export_tables(conn: sa.Connection) -> None:
    """Configured audience model associations and analysis log exports."""
    from opencleanrooms.storage import analysis_log_exports, audience_model_associations

    for module in (audience_model_associations, analysis_log_exports):
        for table in module.TABLES:
            table.create(conn, checkfirst=True)


def _create_privacy_budget_tables(conn: sa.Connection) -> None:
    """Privacy budget templates and the ledgers of the budgets they set."""
    from opencleanrooms.storage import privacy_budgets

    for table in privacy_budgets.TABLES:
        table.create(conn, checkfirst=True)


def _create_protected_job_tables(conn: sa.Connection) -> None:
    """Protected (PySpark) jobs and who sees them."""
    from opencleanrooms.storage import protected_jobs

    for table in protected_jobs.TABLES:
        table.create(conn, checkfirst=True)


def _create_intermediate_tables(conn: sa.Connection) -> None:
    """Intermediate tables, their analysis rule and versions."""
    from opencleanrooms.storage import intermediate_tables

    for table in intermediate_tables.TABLES:
        table.create(conn, checkfirst=True)


def _create_id_mapping_tables(conn: sa.Connection) -> None:
    """ID namespace associations, ID mapping tables, and the local Entity Resolution entries they resolve to."""
    from opencleanrooms.catalog import entity_resolution
    from opencleanrooms.storage import id_mappings

    for table in (*entity_resolution.TABLES, *id_mappings.TABLES):
        table.create(conn, checkfirst=True)


def _index_intermediate_dependencies(conn: sa.Connection) -> None:
    from opencleanrooms.storage import intermediate_tables

    intermediate_tables.index_dependencies(conn)


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
    _create_protected_job_tables,  # 7: protected jobs
    _create_intermediate_tables,  # 8: intermediate tables and their versions
    _create_id_mapping_tables,  # 9: ID namespace associations and ID mapping tables
    _create_audience_model_and_log_export_tables,  # 10: audience model associations, analysis log exports
    _index_intermediate_dependencies,  # 11: what each intermediate table was populated from
]


class ConstraintViolation(Exception):
    """A write broke an integrity constraint other than a unique key (a foreign key, a NOT NULL): a defect."""


class DuplicateError(ConstraintViolation):
    """A unique key already exists (for example a second membership for the same account)."""


class RetryableError(Exception):
    """PostgreSQL failed the transaction to break a deadlock or a serialization conflict; it was rolled back and
    can be run again as a whole."""


class MissingDriver(Exception):
    """The database URL needs a driver that is not installed."""


MISSING_POSTGRESQL_DRIVER = ("PostgreSQL support needs the postgresql extra: "
                             "pip install 'opencleanrooms[postgresql]'")
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_UNIQUE_SQLSTATE = "23505"
_SQLITE_UNIQUE_CODES = frozenset({1555, 2067})  # SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE

LockKey = tuple[str, ...]
MIGRATION_LOCK: LockKey = ("migrate",)


def sqlite_url(data_dir: str | os.PathLike) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'opencleanrooms.db'}"


def normalize_url(url: str) -> str:
    """PostgreSQL URLs without a driver (`postgresql://`, `postgres://`) use psycopg 3, the driver of the extra
    (SQLAlchemy's own default would be psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def lock_id(key: LockKey) -> int:
    """The signed 64-bit advisory lock number of a key (a hash: a collision only serialises two unrelated keys)."""
    digest = hashlib.blake2b("\x1f".join(key).encode(), digest_size=8, person=b"ocr-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgresql = self.url.startswith("postgresql")
        if self.is_sqlite:
            self._reader = _sqlite_engine(self.url, "BEGIN")
            self._writer = _sqlite_engine(self.url, "BEGIN IMMEDIATE")
        else:
            try:
                self._writer = sa.create_engine(self.url, pool_pre_ping=True)
            except ImportError as exc:
                if self.url.startswith("postgresql+psycopg:"):
                    raise MissingDriver(MISSING_POSTGRESQL_DRIVER) from exc
                raise MissingDriver(f"The driver for this database URL is not installed: {exc}") from exc
            # Reads run in autocommit (same pool): at READ COMMITTED every statement takes its own snapshot
            # either way, so a read transaction would only add a BEGIN and a COMMIT round trip per request.
            self._reader = self._writer.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self._reader.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self, locks: Iterable[LockKey] = ()) -> Iterator[sa.Connection]:
        """A write transaction that first takes the advisory locks of `locks` (see the module docstring).

        Unique-key violations surface as DuplicateError, other integrity errors as ConstraintViolation, deadlocks
        and serialization failures as RetryableError, all after the rollback.
        """
        ids = sorted({lock_id(tuple(key)) for key in locks}) if self.is_postgresql else []
        try:
            with self._writer.connect() as conn, conn.begin():
                for number in ids:
                    conn.execute(_ADVISORY_XACT_LOCK, {"id": number})
                yield conn
        except sa.exc.IntegrityError as exc:
            if _is_unique_violation(exc.orig):
                raise DuplicateError(str(exc.orig)) from None
            raise ConstraintViolation(str(exc.orig)) from None
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
                raise RetryableError(str(exc.orig)) from None
            raise

    def migrate(self) -> int:
        """Bring the schema to the newest version; safe to run from several processes at once (on a fresh
        database too: schema_version itself is created under the lock)."""
        with self.write(locks=[MIGRATION_LOCK]) as conn:
            schema.schema_version.create(conn, checkfirst=True)
            current = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar() or 0
            for version in range(current + 1, len(MIGRATIONS) + 1):
                MIGRATIONS[version - 1](conn)
                conn.execute(schema.schema_version.insert().values(version=version, applied_at=time.time()))
        return len(MIGRATIONS)

    def dispose(self) -> None:
        self._writer.dispose()
        if self.is_sqlite:
            self._reader.dispose()


_ADVISORY_XACT_LOCK = sa.text("SELECT pg_advisory_xact_lock(:id)")


def _is_unique_violation(orig: BaseException | None) -> bool:
    if getattr(orig, "sqlstate", None) == _UNIQUE_SQLSTATE:  # psycopg
        return True
    code = getattr(orig, "sqlite_errorcode", None)  # sqlite3 (Python 3.11+)
    if code is not None:
        return code in _SQLITE_UNIQUE_CODES
    return "UNIQUE constraint failed" in str(orig)


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
