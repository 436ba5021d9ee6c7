"""Validation and normalization of catalog entries."""

from __future__ import annotations

import os

import pytest

from opencleanrooms.catalog import ANY_REGION, InvalidEntry, make_source

pytestmark = pytest.mark.backend_independent

A = "111111111111"


def entry(**overrides):
    fields = dict(account_id=A, database="sales", table="orders", location="/data/orders.parquet")
    fields.update(overrides)
    return make_source(**fields)


def test_defaults_and_inferred_format():
    source = entry()
    assert (source.region, source.format, source.header, source.delimiter) == (ANY_REGION, "parquet", True, None)
    assert entry(location="/d/x.CSV").format == "csv"
    assert entry(location="/d/x.csv.gz").format == "csv"
    assert entry(location="/d/x.pq").format == "parquet"
    assert entry(location="/d/parts/*.parquet").format == "parquet"
    assert entry(location="s3://bucket-1/orders/part-*.csv").format == "csv"
    # directories and prefixes: decided from the files when read
    assert entry(location="/d/parts").format is None
    assert entry(location="s3://bucket-1/orders/").format is None
    assert entry(location="/d/x.json").format is None


def test_names_are_lower_cased_as_glue_does():
    source = entry(database="Sales_DB", table="Orders 2024-q1")
    assert (source.database, source.table) == ("sales_db", "orders 2024-q1")


@pytest.mark.parametrize("overrides, message", [
    ({"account_id": "12345"}, "12 digits"),
    ({"account_id": "11111111111a"}, "12 digits"),
    ({"region": "moon"}, "region"),
    ({"database": "bad name"}, "database name"),  # spaces are allowed in table names only
    ({"database": ""}, "database name"),
    ({"table": "-lead"}, "table name"),
    ({"table": "x" * 129}, "table name"),
    ({"format": "orc"}, "parquet or csv"),
    ({"location": ""}, "empty"),
    ({"location": "http://example.com/x.csv"}, "local paths or s3://"),
    ({"location": "s3://B/x.csv"}, "bucket"),
    ({"location": "s3://bucket-1/*/x.csv"}, "last segment"),
    ({"format": "parquet", "delimiter": ","}, "CSV tables only"),
    ({"location": "/d/x.csv", "delimiter": ",,"}, "one character"),
    ({"location": "/d/x.csv", "header": "yes"}, "true or false"),
])
def test_invalid_entries(overrides, message):
    with pytest.raises(InvalidEntry, match=message):
        entry(**overrides)
    assert issubclass(InvalidEntry, ValueError)  # the CLI reports ValueErrors as usage errors


def test_locations_are_made_absolute(tmp_path, monkeypatch):
    assert entry(location="data/x.parquet", base_dir=str(tmp_path)).location == str(tmp_path / "data/x.parquet")
    monkeypatch.chdir(tmp_path)
    assert entry(location="./x.parquet").location == str(tmp_path / "x.parquet")
    assert entry(location=f"file://{tmp_path}/y.parquet").location == str(tmp_path / "y.parquet")
    assert entry(location="~/z.parquet").location == os.path.expanduser("~/z.parquet")
    assert entry(location="s3://bucket-1/a/b/").location == "s3://bucket-1/a/b/"


def test_csv_options():
    source = entry(location="/d/x.tsv", delimiter="\\t", header=False)
    assert (source.format, source.delimiter, source.header) == ("csv", "\t", False)
    assert source.options == {"header": False, "delimiter": "\t"}
    assert entry().options == {}
