"""The database layer: migrations, durability settings, concurrent writers across processes."""

from __future__ import annotations

import multiprocessing

import sqlalchemy as sa

from opencleanrooms.storage import credentials, schema
from opencleanrooms.storage.database import Database, DuplicateError, sqlite_url


def test_migrate_is_idempotent_and_sets_wal(tmp_path):
    db = Database(sqlite_url(tmp_path))
    assert db.migrate() == db.migrate() == 6
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        versions = conn.execute(sa.select(schema.schema_version.c.version)).scalars().all()
    assert versions == [1, 2, 3, 4, 5, 6]


def test_write_rolls_back_on_error_and_maps_duplicates(tmp_path):
    db = Database(sqlite_url(tmp_path))
    db.migrate()
    try:
        with db.write() as conn:
            credentials.put(conn, "K1", "s", "111111111111")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with db.read() as conn:
        assert credentials.lookup(conn, "K1") is None
    with db.write() as conn:
        conn.execute(schema.server_state.insert().values(name="x", value="1"))
    try:
        with db.write() as conn:
            conn.execute(schema.server_state.insert().values(name="x", value="2"))
        raise AssertionError("expected DuplicateError")
    except DuplicateError:
        pass


def _writer(url: str, prefix: str, count: int) -> None:
    db = Database(url)
    for i in range(count):
        with db.write() as conn:
            credentials.put(conn, f"{prefix}{i}", "secret", "111111111111")


def test_concurrent_writers_in_several_processes_all_commit(tmp_path):
    url = sqlite_url(tmp_path)
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
