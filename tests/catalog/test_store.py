"""Catalog entries in a real SQLite database: round trip, replace, remove, isolation between accounts, regions."""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.catalog import (
    TableNotFound,
    make_source,
    require_table,
    resolve,
    store,
)
from opencleanrooms.catalog.commands import add_table, list_tables, remove_table
from opencleanrooms.storage.database import Database
from tests.support.backend import database_url

A, B = "111111111111", "222222222222"


def test_round_trip(db):
    source = make_source(account_id=A, region="us-east-1", database="sales", table="orders",
                         location="/data/orders.csv", header=False, delimiter=";")
    with db.write() as conn:
        assert store.put(conn, source) is False
    with db.read() as conn:
        assert resolve(conn, A, "us-east-1", "sales", "orders") == source
        assert store.all_entries(conn) == [source]


def test_replace_and_remove(db):
    first, replaced = add_table(db, account_id=A, database="sales", table="orders", location="/d/a.parquet")
    assert not replaced
    second, replaced = add_table(db, account_id=A, database="sales", table="orders", location="/d/b.csv")
    assert replaced
    assert list_tables(db) == [second]
    assert remove_table(db, account_id=A, database="SALES", table="Orders") is True
    assert remove_table(db, account_id=A, database="sales", table="orders") is False
    assert list_tables(db) == []


def test_accounts_are_isolated(db):
    add_table(db, account_id=A, database="sales", table="orders", location="/d/a.parquet")
    add_table(db, account_id=B, database="other", table="orders", location="/d/b.parquet")
    with db.read() as conn:
        assert resolve(conn, A, "us-east-1", "sales", "orders").location == "/d/a.parquet"
        assert resolve(conn, B, "us-east-1", "sales", "orders") is None
        try:
            require_table(conn, B, "us-east-1", "sales", "orders")
            raise AssertionError("expected TableNotFound")
        except TableNotFound as exc:
            assert str(exc) == f"Table sales.orders not found in the catalog of account {B}"
    assert [s.account_id for s in list_tables(db, B)] == [B]
    assert not remove_table(db, account_id=B, database="sales", table="orders")
    assert len(list_tables(db)) == 2


def test_exact_region_wins_over_any_region(db):
    add_table(db, account_id=A, database="sales", table="orders", location="/d/any.parquet")
    add_table(db, account_id=A, region="eu-west-1", database="sales", table="orders", location="/d/eu.parquet")
    add_table(db, account_id=A, region="us-west-2", database="sales", table="only_west", location="/d/w.parquet")
    with db.read() as conn:
        assert resolve(conn, A, "eu-west-1", "sales", "orders").location == "/d/eu.parquet"
        assert resolve(conn, A, "us-east-1", "sales", "orders").location == "/d/any.parquet"
        assert resolve(conn, A, "us-west-2", "sales", "only_west").location == "/d/w.parquet"
        assert resolve(conn, A, "us-east-1", "sales", "only_west") is None
        assert resolve(conn, A, "us-east-1", "SALES", "ORDERS").location == "/d/any.parquet"
    assert remove_table(db, account_id=A, region="eu-west-1", database="sales", table="orders")
    with db.read() as conn:
        assert resolve(conn, A, "eu-west-1", "sales", "orders").location == "/d/any.parquet"


def test_get_many_agrees_with_resolve_in_one_statement_per_two_hundred_keys(db):
    add_table(db, account_id=A, database="sales", table="orders", location="/d/any.parquet")
    add_table(db, account_id=A, region="eu-west-1", database="sales", table="orders", location="/d/eu.parquet")
    add_table(db, account_id=A, region="us-west-2", database="sales", table="only_west", location="/d/w.parquet")
    add_table(db, account_id=B, database="other", table="orders", location="/d/b.parquet")
    keys = [(A, "eu-west-1", "sales", "orders"), (A, "us-east-1", "SALES", "Orders"),
            (A, "us-west-2", "sales", "only_west"), (A, "us-east-1", "sales", "only_west"),
            (B, "us-east-1", "sales", "orders"), (B, "eu-west-1", "other", "orders"), (A, "us-east-1", "no", "pe")]
    many = [(A, "us-east-1", "sales", f"t{i}") for i in range(250)] + keys  # two statements' worth
    statements = []

    def count(*args):
        statements.append(args[2])

    with db.read() as conn:
        one_by_one = {key: resolve(conn, *key) for key in keys}
        sa.event.listen(conn, "before_cursor_execute", count)
        found = store.get_many(conn, many + keys)  # repeated keys are looked up once
        sa.event.remove(conn, "before_cursor_execute", count)
        assert store.get_many(conn, []) == {}
    assert len(statements) == 2, statements
    assert {key: found[key] for key in keys} == one_by_one
    assert [one_by_one[key] and one_by_one[key].location for key in keys] == [
        "/d/eu.parquet", "/d/any.parquet", "/d/w.parquet", None, None, "/d/b.parquet", None]
    assert set(found) == set(many) and not any(found[key] for key in many[:250])


def test_migration_step_adds_the_table_to_an_existing_database(tmp_path):
    database = Database(database_url(tmp_path))
    database.migrate()
    with database.write() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS catalog_tables")  # a database from before the catalog
    with database.write() as conn:
        store.create_table(conn)
        store.create_table(conn)  # idempotent (checkfirst)
    with database.read() as conn:
        assert "catalog_tables" in sa.inspect(conn).get_table_names()
    add_table(database, account_id=A, database="d", table="t", location="/x.parquet")
    assert len(list_tables(database)) == 1
    database.dispose()


def test_entries_are_shared_between_database_handles(tmp_path):
    """What another server process (its own engine on the same file) sees."""
    (tmp_path / "shared").mkdir()
    url = database_url(tmp_path / "shared")
    writer, reader = Database(url), Database(url)
    writer.migrate()
    with writer.write() as conn:
        store.create_table(conn)
    with reader.read() as conn:
        assert resolve(conn, A, "us-east-1", "d", "t") is None
    add_table(writer, account_id=A, database="d", table="t", location="/x.parquet")
    with reader.read() as conn:
        assert resolve(conn, A, "us-east-1", "d", "t").location == "/x.parquet"
    writer.dispose()
    reader.dispose()
