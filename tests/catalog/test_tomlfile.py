"""TOML catalog files: parsing, relative locations, errors, import into the store."""

from __future__ import annotations

import pytest

from opencleanrooms.catalog import Column, InvalidEntry, load_catalog_file, read_schema, resolve
from opencleanrooms.catalog.commands import import_file, list_tables

CATALOG = """
[[tables]]
account_id = "111111111111"
database = "advertiser"
table = "customers"
location = "data/customers.csv"

[[tables]]
account_id = 222222222222          # an integer is accepted too
region = "eu-west-1"
database = "publisher"
table = "impressions"
location = "{abs}"
format = "csv"
header = false
delimiter = ";"
"""


def test_load_and_import(tmp_path, db):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "customers.csv").write_text("user_id,age\nu1,30\n")
    (tmp_path / "imp.txt").write_text("u1;3\n")
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.format(abs=tmp_path / "imp.txt"))
    customers, impressions = load_catalog_file(path)
    assert customers.location == str(tmp_path / "data" / "customers.csv")  # relative to the file
    assert (customers.region, customers.format) == ("*", "csv")
    assert (impressions.account_id, impressions.region, impressions.header, impressions.delimiter) == (
        "222222222222", "eu-west-1", False, ";")
    assert import_file(db, path) == [customers, impressions]
    assert import_file(db, path) == [customers, impressions]  # again: replaces, no duplicates
    assert len(list_tables(db)) == 2
    with db.read() as conn:
        found = resolve(conn, "222222222222", "eu-west-1", "publisher", "impressions")
        assert resolve(conn, "111111111111", "eu-west-1", "publisher", "impressions") is None
    assert read_schema(found, cache=None) == [Column("col0", "string"), Column("col1", "bigint")]


@pytest.mark.parametrize("text, message", [
    ("[[tables]]\naccount_id = '111111111111'\ndatabase = 'd'\ntable = 't'\n", "table 1: missing location"),
    ("[[tables]]\naccount_id = '1'\ndatabase = 'd'\ntable = 't'\nlocation = 'x.csv'\n", "table 1: account id"),
    ("[[tables]]\naccount_id = '111111111111'\ndatabase = 'd'\ntable = 't'\nlocation = 'x.csv'\ncolour = 1\n",
     "unknown key"),
    ("[[tables]]\naccount_id = '111111111111'\ndatabase = 'd'\ntable = 't'\nlocation = 'x.csv'\nformat = 'orc'\n",
     "parquet or csv"),
    ("tables = 3\n", "array of tables"),
    ("[table]\nx = 1\n", "unknown key"),
    ("[[tables]\n", "not valid TOML"),
    ("[[tables]]\naccount_id = '111111111111'\ndatabase = 'd'\ntable = 't'\nlocation = 'x.csv'\n"
     "[[tables]]\naccount_id = '111111111111'\ndatabase = 'D'\ntable = 'T'\nlocation = 'y.csv'\n", "listed twice"),
])
def test_errors_name_the_file_and_entry(tmp_path, db, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidEntry, match=message) as error:
        import_file(db, path)
    assert str(path) in str(error.value)
    assert list_tables(db) == []  # nothing imported


def test_missing_file(tmp_path):
    with pytest.raises(InvalidEntry, match="No such file"):
        load_catalog_file(tmp_path / "nope.toml")
