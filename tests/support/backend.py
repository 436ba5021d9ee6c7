"""Which database the tests run on, and a fresh database per data directory.

The whole suite runs on SQLite (the default) or on PostgreSQL:

- `OPENCLEANROOMS_TEST_DATABASE_URL=postgresql://user@host:port/db`: a PostgreSQL server the tests may create
  databases on (one per data directory, named `ocr_test_...`, dropped at the end of the session);
- `OPENCLEANROOMS_TEST_BACKEND=postgresql` without a URL: the session starts a private server of its own from the
  machine's PostgreSQL binaries (tests/support/postgres.py) and stops it at the end.

A data directory stands for one database: `database_url(path)` gives the same URL for the same directory (it is
remembered in a file there), so two server processes started on one directory share one database, as two SQLite
processes share one file, and a CLI command run with `storage_args(path)` reaches it too.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import sqlalchemy as sa

from opencleanrooms.storage.database import normalize_url, sqlite_url

URL_ENV = "OPENCLEANROOMS_TEST_DATABASE_URL"
BACKEND_ENV = "OPENCLEANROOMS_TEST_BACKEND"
_MARKER = "test-database-url"
_created: list[str] = []  # databases this process created, dropped by drop_created()
_forbidden: str | None = None  # set while a test marked backend_independent runs (tests/conftest.py)


def forbid(reason: str | None) -> None:
    """While `reason` is set, asking for a data directory's database fails with it."""
    global _forbidden
    _forbidden = reason


def _check_allowed() -> None:
    if _forbidden:
        raise AssertionError(_forbidden)


def is_postgresql() -> bool:
    return bool(os.environ.get(URL_ENV))


def name() -> str:
    return "postgresql" if is_postgresql() else "sqlite"


def database_url(path: str | os.PathLike) -> str:
    """The URL of the database that stands for this data directory, created on first use."""
    _check_allowed()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not is_postgresql():
        return sqlite_url(path)
    marker = path / _MARKER
    if marker.exists():
        return marker.read_text().strip()
    url = new_postgresql_database()
    marker.write_text(url)
    return url


def storage_args(path: str | os.PathLike) -> list[str]:
    """The `opencleanrooms` storage flags that reach the database of this data directory."""
    _check_allowed()
    args = ["--data-dir", str(path)]
    if is_postgresql():
        args += ["--database-url", database_url(path)]
    return args


def new_postgresql_database() -> str:
    """A new, empty database on the test server; its URL."""
    admin = sa.make_url(normalize_url(os.environ[URL_ENV]))
    name = f"ocr_test_{secrets.token_hex(6)}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        engine.dispose()
    _created.append(name)
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_created() -> None:
    """Drop the databases this session created (their server processes are stopped by then)."""
    if not _created or not is_postgresql():
        return
    engine = sa.create_engine(sa.make_url(normalize_url(os.environ[URL_ENV])), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for db in _created:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    finally:
        engine.dispose()
        _created.clear()
