"""The database layer on the backend under test: migrations, durability settings, integrity errors, advisory-lock
keys, deadlock retry signalling, concurrent writers across processes."""

from __future__ import annotations

import multiprocessing
import sys
import threading

import pytest
import sqlalchemy as sa

from opencleanrooms.storage import credentials, schema, server_state
from opencleanrooms.storage.database import (
    MIGRATIONS,
    MISSING_POSTGRESQL_DRIVER,
    ConstraintViolation,
    Database,
    DuplicateError,
    MissingDriver,
    RetryableError,
    lock_id,
    normalize_url,
)
from tests.support import backend
from tests.support.backend import database_url

postgresql_only = pytest.mark.skipif(not backend.is_postgresql(), reason="PostgreSQL behaviour")


def test_migrate_is_idempotent(tmp_path):
    db = Database(database_url(tmp_path))
    assert db.migrate() == db.migrate() == len(MIGRATIONS) == 11  # the newest: intermediate table dependencies
    with db.read() as conn:
        versions = conn.execute(sa.select(schema.schema_version.c.version)).scalars().all()
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    db.dispose()


def test_migration_11_indexes_what_stored_intermediate_tables_were_populated_from(tmp_path):
    """A database of version 10 holds intermediate tables whose docs list their dependencies; migration 11 builds
    the index that finds a table's dependents from them."""
    from opencleanrooms.storage import intermediate_tables as it

    db = Database(database_url(tmp_path))
    db.migrate()
    with db.write() as conn:  # back to version 10, with a collaboration and two tables populated before the index
        it.intermediate_table_dependencies.drop(conn)
        conn.execute(schema.schema_version.delete().where(schema.schema_version.c.version == 11))
        conn.execute(schema.collaborations.insert().values(
            id="c1", region="us-east-1", arn="arn", creator_account_id="111111111111", creator_display_name="a",
            name="c", deleted=False, create_time=0.0, update_time=0.0, doc={}))
        conn.execute(schema.memberships.insert().values(
            id="m1", region="us-east-1", arn="arn", account_id="111111111111", collaboration_id="c1",
            status="ACTIVE", create_time=0.0, update_time=0.0, doc={}))
        for table_id, dependencies in (("a", [{"id": "base", "parentType": "DIRECT"}]),
                                       ("b", [{"id": "a", "parentType": "DIRECT"},
                                              {"id": "base", "parentType": "INDIRECT"}])):
            conn.execute(it.intermediate_tables.insert().values(
                id=table_id, region="us-east-1", account_id="111111111111", collaboration_id="c1",
                membership_id="m1", name=table_id, name_key=table_id, arn=table_id, create_time=0.0,
                update_time=0.0, doc={"dependencies": dependencies}))
    assert db.migrate() == 11
    with db.read() as conn:
        assert [r["id"] for r in it.dependents(conn, "c1", "base")] == ["a", "b"]
        assert [r["id"] for r in it.dependents(conn, "c1", "base", direct=True)] == ["a"]
        assert [r["id"] for r in it.dependents(conn, "c1", "a", direct=True)] == ["b"]
    db.dispose()


@pytest.mark.sqlite_only("checks SQLite's journal and synchronous pragmas")
def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path):
    db = Database(database_url(tmp_path))
    db.migrate()
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_write_rolls_back_on_error_and_maps_duplicates(tmp_path):
    db = Database(database_url(tmp_path))
    db.migrate()
    with pytest.raises(RuntimeError):
        with db.write() as conn:
            credentials.put(conn, "K1", "s", "111111111111")
            raise RuntimeError("boom")
    with db.read() as conn:
        assert credentials.lookup(conn, "K1") is None
    with db.write() as conn:
        conn.execute(schema.server_state.insert().values(name="x", value="1"))
    with pytest.raises(DuplicateError):
        with db.write() as conn:
            conn.execute(schema.server_state.insert().values(name="x", value="2"))
    db.dispose()


def test_other_integrity_errors_are_not_duplicates(tmp_path):
    """A foreign key or NOT NULL failure is a defect (ConstraintViolation), not a taken key (DuplicateError)."""
    db = Database(database_url(tmp_path))
    db.migrate()
    member = {"collaboration_id": "no-such-collaboration", "collaboration_seq": 1, "region": "us-east-1",
              "account_id": "111111111111", "status": "INVITED", "listed": True, "display_name": "m",
              "create_time": 0.0, "update_time": 0.0, "doc": {}}
    for statement in (schema.members.insert().values(**member),
                      schema.server_state.insert().values(name="y", value=None)):
        with pytest.raises(ConstraintViolation) as caught:
            with db.write() as conn:
                conn.execute(statement)
        assert not isinstance(caught.value, DuplicateError), caught.value
    db.dispose()


def test_postgresql_urls_use_psycopg_and_a_missing_driver_names_the_extra(monkeypatch):
    assert normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("postgres://u@h:5/d") == "postgresql+psycopg://u@h:5/d"
    assert normalize_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("sqlite:////x/y.db") == "sqlite:////x/y.db"
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails as if not installed
    with pytest.raises(MissingDriver) as caught:
        Database("postgresql://user@127.0.0.1:1/db")
    assert str(caught.value) == MISSING_POSTGRESQL_DRIVER
    assert "pip install 'opencleanrooms[postgresql]'" in str(caught.value)


def test_lock_ids_are_stable_signed_64_bit_numbers():
    a = lock_id(("collaboration", "abc"))
    assert a == lock_id(("collaboration", "abc")) != lock_id(("collaboration", "abd"))
    assert lock_id(("a", "bc")) != lock_id(("ab", "c"))
    assert -(2 ** 63) <= a < 2 ** 63


def _writer(url: str, prefix: str, count: int) -> None:
    db = Database(url)
    for i in range(count):
        with db.write() as conn:
            credentials.put(conn, f"{prefix}{i}", "secret", "111111111111")


def test_concurrent_writers_in_several_processes_all_commit(tmp_path):
    url = database_url(tmp_path)
    Database(url).migrate()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(url, f"P{n}K", 150)) for n in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    with Database(url).read() as conn:
        assert credentials.count(conn) == 600


def _incrementer(url: str, count: int) -> None:
    """Read, then write the value read plus one: lost updates unless the key serialises the writers."""
    db = Database(url)
    for _ in range(count):
        with db.write(locks=[("counter", "c")]) as conn:
            value = int(conn.execute(sa.select(schema.server_state.c.value)
                                     .where(schema.server_state.c.name == "counter")).scalar_one())
            server_state.put(conn, "counter", str(value + 1))


def test_lock_keys_serialise_read_then_write_across_processes(tmp_path):
    url = database_url(tmp_path)
    db = Database(url)
    db.migrate()
    with db.write() as conn:
        server_state.put(conn, "counter", "0")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_incrementer, args=(url, 60)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    with db.read() as conn:
        assert server_state.get_or_create_secret(conn, "counter") == "240"
    db.dispose()


@postgresql_only
def test_a_deadlock_is_rolled_back_and_raised_as_retryable(tmp_path):
    db = Database(database_url(tmp_path))
    db.migrate()
    with db.write() as conn:
        server_state.put(conn, "a", "0")
        server_state.put(conn, "b", "0")
    both_hold_one = threading.Barrier(2)
    outcomes: list = []
    S = schema.server_state

    def cross(first: str, second: str) -> None:
        try:
            with db.write() as conn:
                conn.execute(S.update().where(S.c.name == first).values(value=first))
                both_hold_one.wait(10)
                conn.execute(S.update().where(S.c.name == second).values(value=first))
            outcomes.append("committed")
        except RetryableError:
            outcomes.append("retryable")
        except Exception as exc:  # noqa: BLE001
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=cross, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["committed", "retryable"], outcomes
    db.dispose()


@postgresql_only
def test_migrating_takes_the_migration_lock(tmp_path):
    """While another session holds the migration key, migrate() waits for it (and then finds nothing to do)."""
    url = database_url(tmp_path)
    db = Database(url)
    db.migrate()
    from opencleanrooms.storage.database import MIGRATION_LOCK

    done = threading.Event()
    with db.write(locks=[MIGRATION_LOCK]):
        other = Database(url)
        thread = threading.Thread(target=lambda: (other.migrate(), done.set()))
        thread.start()
        assert not done.wait(1.0), "migrate() did not wait for the migration lock"
    assert done.wait(10)
    thread.join()
    other.dispose()
    db.dispose()
