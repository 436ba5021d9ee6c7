"""Schemas and scans of local Parquet and CSV data, read by real DuckDB from files in a temporary directory."""

from __future__ import annotations

import os

import duckdb
import pytest

from opencleanrooms.catalog import (
    Column,
    SchemaCache,
    TableUnreadable,
    make_source,
    prepare_scan,
    read_schema,
)
from opencleanrooms.catalog.glue_types import UnsupportedType, glue_type

pytestmark = pytest.mark.backend_independent

A = "111111111111"


def source(location, **options):
    return make_source(account_id=A, database="db", table="t", location=str(location), **options)


def write_parquet(path, select: str) -> None:
    with duckdb.connect() as con:
        con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")


def count_rows(src) -> int:
    with duckdb.connect() as con:
        return con.execute(f"SELECT count(*) FROM {prepare_scan(src).sql()}").fetchone()[0]


def test_parquet_file(tmp_path):
    path = tmp_path / "customers.parquet"
    write_parquet(path, "SELECT 'u1' AS user_id, DATE '2024-01-02' AS signup_date, 1.5::DOUBLE AS ltv "
                        "FROM range(10)")
    assert read_schema(source(path), cache=None) == [
        Column("user_id", "string"), Column("signup_date", "date"), Column("ltv", "double")]
    assert count_rows(source(path)) == 10


def test_csv_with_header(tmp_path):
    path = tmp_path / "impressions.csv"
    path.write_text("user_id,campaign_id,impression_time,clicks,spend\n"
                    "u1,c1,2024-03-01 10:00:00,1,0.25\nu2,c2,2024-03-01 11:30:00,0,1.5\n")
    assert read_schema(source(path), cache=None) == [
        Column("user_id", "string"), Column("campaign_id", "string"), Column("impression_time", "timestamp"),
        Column("clicks", "bigint"), Column("spend", "double")]
    assert count_rows(source(path)) == 2


def test_csv_without_header_and_other_delimiters(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("u1|2024-01-01|3\nu2|2024-01-02|4\n")
    headerless = source(path, format="csv", header=False, delimiter="|")
    assert read_schema(headerless, cache=None) == [
        Column("col0", "string"), Column("col1", "date"), Column("col2", "bigint")]
    scan = prepare_scan(headerless)
    with duckdb.connect() as con:
        assert con.execute(f"SELECT sum(col2) FROM {scan.sql()}").fetchone()[0] == 7
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\tx\n")
    assert [c.name for c in read_schema(source(tsv), cache=None)] == ["a", "b"]  # delimiter detected
    assert [c.name for c in read_schema(source(tsv, delimiter="\t"), cache=None)] == ["a", "b"]


def test_column_names_are_lower_cased(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("UserId,Email Hash\nu1,h\n")
    assert [c.name for c in read_schema(source(path), cache=None)] == ["userid", "email hash"]


def test_directory_of_parquet_parts(tmp_path):
    parts = tmp_path / "customers"
    (parts / "nested").mkdir(parents=True)
    write_parquet(parts / "part-0.parquet", "SELECT range AS id, 'a' AS name FROM range(3)")
    write_parquet(parts / "part-1.parquet", "SELECT range AS id, 'b' AS name FROM range(4)")
    write_parquet(parts / "nested" / "part-2.parquet", "SELECT range AS id, 'c' AS name FROM range(5)")
    (parts / "_SUCCESS").write_text("")  # Spark/Glue markers and hidden files are not data
    (parts / ".part-0.parquet.crc").write_text("junk")
    (parts / "_temporary").mkdir()
    (parts / "_temporary" / "junk.parquet").write_text("junk")
    src = source(parts)
    assert src.format is None  # from the files' extensions
    assert read_schema(src, cache=None) == [Column("id", "bigint"), Column("name", "string")]
    assert count_rows(src) == 12
    assert prepare_scan(src).files == tuple(str(p) for p in [parts / "nested/part-2.parquet",
                                                             parts / "part-0.parquet", parts / "part-1.parquet"])


def test_glob(tmp_path):
    write_parquet(tmp_path / "sales-2024.parquet", "SELECT 1 AS x")
    write_parquet(tmp_path / "sales-2025.parquet", "SELECT 2 AS x")
    write_parquet(tmp_path / "other.parquet", "SELECT 'not me' AS y")
    src = source(tmp_path / "sales-*.parquet")
    assert read_schema(src, cache=None) == [Column("x", "int")]
    assert count_rows(src) == 2
    (tmp_path / "deep" / "er").mkdir(parents=True)
    write_parquet(tmp_path / "deep" / "er" / "sales-2026.parquet", "SELECT 3 AS x")
    assert count_rows(source(tmp_path / "**" / "sales-*.parquet")) == 3
    with pytest.raises(TableUnreadable, match=r"No data files found at .*nothing-\*\.parquet"):
        read_schema(source(tmp_path / "nothing-*.parquet"), cache=None)


def test_missing_file_and_empty_directory(tmp_path):
    with pytest.raises(TableUnreadable) as missing:
        read_schema(source(tmp_path / "gone.parquet"), cache=None)
    assert str(missing.value) == f"Table location {tmp_path / 'gone.parquet'} does not exist"
    (tmp_path / "empty" / "_SUCCESS").parent.mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_text("")
    with pytest.raises(TableUnreadable, match="No data files found at"):
        read_schema(source(tmp_path / "empty"), cache=None)


def test_bad_formats(tmp_path):
    json_file = tmp_path / "data.json"
    json_file.write_text('{"a": 1}\n')
    with pytest.raises(TableUnreadable, match="Cannot tell the format .* set the table's format"):
        read_schema(source(json_file), cache=None)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_parquet(mixed / "a.parquet", "SELECT 1 AS x")
    (mixed / "b.csv").write_text("x\n1\n")
    with pytest.raises(TableUnreadable, match="Cannot tell the format"):
        read_schema(source(mixed), cache=None)
    fake = tmp_path / "fake.parquet"
    fake.write_text("a,b\n" + "1,2\n" * 20)
    with pytest.raises(TableUnreadable, match=r"Could not read parquet data at .*fake\.parquet: .*magic"):
        read_schema(source(fake), cache=None)
    # an explicit format overrides the extension
    assert read_schema(source(fake, format="csv"), cache=None) == [Column("a", "bigint"), Column("b", "bigint")]


def test_names_differing_only_in_case_stay_distinct(tmp_path):
    path = tmp_path / "dup.parquet"
    write_parquet(path, 'SELECT 1 AS "Id", 2 AS "id"')
    # DuckDB binds the second as id_1 (its names are case-insensitive), and scans answer to that name
    assert read_schema(source(path), cache=None) == [Column("id", "int"), Column("id_1", "int")]
    with duckdb.connect() as con:
        assert con.execute(f"SELECT id, id_1 FROM {prepare_scan(source(path)).sql()}").fetchone() == (1, 2)


# Every DuckDB type that Parquet carries, written with COPY and read back: expression -> Glue type.
PARQUET_TYPES = {
    "'x'::VARCHAR": "string",
    "'{}'::JSON": "string",
    "uuid()": "string",
    "'a'::ENUM('a', 'b')": "string",  # Parquet stores enums as strings
    "TIME '10:00:00'": "string",
    "TIMETZ '10:00:00+01'": "string",
    "INTERVAL 1 DAY": "string",
    "NULL": "string",
    "true": "boolean",
    "1::TINYINT": "tinyint",
    "1::SMALLINT": "smallint",
    "1::INTEGER": "int",
    "1::BIGINT": "bigint",
    "1::UTINYINT": "smallint",
    "1::USMALLINT": "int",
    "1::UINTEGER": "bigint",
    "1::UBIGINT": "decimal(20,0)",
    "1.5::FLOAT": "float",
    "1.5::DOUBLE": "double",
    "1.25::DECIMAL(10,2)": "decimal(10,2)",
    "1.25::DECIMAL(38,6)": "decimal(38,6)",
    "1.25::DECIMAL(4,1)": "decimal(4,1)",
    "DATE '2024-01-01'": "date",
    "TIMESTAMP '2024-01-01 10:00:00'": "timestamp",
    "TIMESTAMP_NS '2024-01-01 10:00:00'": "timestamp",
    "TIMESTAMPTZ '2024-01-01 10:00:00+00'": "timestamp",
    "'\\x01'::BLOB": "binary",
    "[1, 2]::INTEGER[]": "array<int>",
    "[1, 2, 3]::INTEGER[3]": "array<int>",
    "[['a']]": "array<array<string>>",
    "{'a': 1, 'b': 'x'}": "struct<a:int,b:string>",
    "[{'x': [1.5::DOUBLE]}]": "array<struct<x:array<double>>>",
    "MAP {'k': 1}": "map<string,int>",
    "MAP {1::BIGINT: [DATE '2024-01-01']}": "map<bigint,array<date>>",
}


def test_type_mapping_of_parquet_columns(tmp_path):
    path = tmp_path / "types.parquet"
    names = [f"c{i}" for i in range(len(PARQUET_TYPES))]
    write_parquet(path, "SELECT " + ", ".join(f"{expr} AS {name}" for expr, name in zip(PARQUET_TYPES, names)))
    columns = read_schema(source(path), cache=None)
    assert [c.name for c in columns] == names
    assert {expr: col.type for expr, col in zip(PARQUET_TYPES, columns)} == PARQUET_TYPES


# Types a Parquet file cannot hold (DuckDB writes them as something else), mapped from real DuckDB types.
IN_MEMORY_TYPES = {
    "TIMESTAMP_S '2024-01-01'": "timestamp",
    "TIMESTAMP_MS '2024-01-01'": "timestamp",
    "1::HUGEINT": "decimal(38,0)",
    "1::UHUGEINT": "decimal(38,0)",
    "1::VARINT": "decimal(38,0)",
    "'101'::BIT": "binary",
    "'a'::ENUM('a', 'b')": "string",
}


def test_type_mapping_of_other_duckdb_types():
    with duckdb.connect() as con:
        types = con.sql("SELECT " + ", ".join(f"{expr} AS c{i}" for i, expr in enumerate(IN_MEMORY_TYPES))).types
        assert {expr: glue_type(t) for expr, t in zip(IN_MEMORY_TYPES, types)} == IN_MEMORY_TYPES
        union = con.sql("SELECT union_value(k := 1) AS u").types[0]
    with pytest.raises(UnsupportedType):
        glue_type(union)


def test_schema_cache_follows_file_changes(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet(path, "SELECT 1 AS a")
    cache = SchemaCache()
    src = source(path)
    assert read_schema(src, cache=cache) == [Column("a", "int")]
    assert read_schema(src, cache=cache) == [Column("a", "int")]
    assert (cache.hits, cache.misses) == (1, 1)
    write_parquet(tmp_path / "new.parquet", "SELECT 1 AS a, 'x' AS b")
    os.replace(tmp_path / "new.parquet", path)
    assert read_schema(src, cache=cache) == [Column("a", "int"), Column("b", "string")]
    assert (cache.hits, cache.misses) == (1, 2)
    # same size, new modification time: read again
    before = path.stat()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    read_schema(src, cache=cache)
    assert (cache.hits, cache.misses) == (1, 3)
    # a file added to a directory table is a change too
    directory = tmp_path / "dir"
    directory.mkdir()
    write_parquet(directory / "p1.parquet", "SELECT 1 AS a")
    read_schema(source(directory), cache=cache)
    write_parquet(directory / "p0.parquet", "SELECT 1 AS a, 2 AS z")  # sorts first: its schema is the table's
    assert read_schema(source(directory), cache=cache) == [Column("a", "int"), Column("z", "int")]
    assert cache.hits == 1


def test_schema_cache_is_bounded():
    cache = SchemaCache(max_entries=2)
    for i in range(3):
        cache.put((i,), (Column("a", "int"),))
    assert cache.get((0,)) is None and cache.get((2,)) is not None


def test_scan_quotes_paths(tmp_path):
    odd = tmp_path / "it's here"
    odd.mkdir()
    write_parquet(str(odd / "x.parquet").replace("'", "''"), "SELECT 42 AS answer")
    src = source(odd)
    assert read_schema(src, cache=None) == [Column("answer", "int")]
    with duckdb.connect() as con:
        assert con.execute(f"SELECT answer FROM {prepare_scan(src).sql()}").fetchone() == (42,)


def test_empty_and_header_only_csv_are_refused(tmp_path):
    """DuckDB reads an empty CSV as one VARCHAR `column0` and a header alone as VARCHARs: neither is a schema."""
    import gzip

    cases = {
        "empty.csv": (b"", {}, "is empty"),
        "blank.csv": (b"\n\n", {}, "is empty"),
        "empty-no-header.csv": (b"", {"header": False}, "is empty"),
        "header.csv": (b"user_id,spend\n", {}, "has a header line but no data rows"),
        "header.csv.gz": (gzip.compress(b"user_id,spend\n"), {}, "has a header line but no data rows"),
        "empty.csv.gz": (gzip.compress(b""), {"header": False}, "is empty"),
    }
    for name, (data, options, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(TableUnreadable, match=message) as info:
            read_schema(source(tmp_path / name, **options), cache=None)
        assert str(tmp_path / name) in str(info.value)
    (tmp_path / "one-row.csv").write_text("user_id,spend\nu1,2.5\n")
    assert read_schema(source(tmp_path / "one-row.csv"), cache=None) == [Column("user_id", "string"),
                                                                         Column("spend", "double")]


def test_locate_scan_names_files_where_they_are_with_the_sniffed_delimiter(tmp_path):
    """For an engine that reads the files itself (Spark): the same files, nothing copied, and the delimiter DuckDB's
    sniffer would use when the entry sets none."""
    from opencleanrooms.catalog import locate_scan

    semi = tmp_path / "semi.csv"
    semi.write_text("a;b\n1;x\n2;y\n")
    scan = locate_scan(source(semi))
    assert (scan.format, scan.files, scan.header, scan.delimiter) == ("csv", (str(semi),), True, ";")
    headerless = tmp_path / "rows.txt"
    headerless.write_text("u1|2024-01-01|3\n")
    scan = locate_scan(source(headerless, format="csv", header=False, delimiter="|"))
    assert scan.delimiter == "|" and scan.names == ("col0", "col1", "col2")
    parquet = tmp_path / "p.parquet"
    write_parquet(parquet, "SELECT 1 AS x")
    assert locate_scan(source(parquet)) == prepare_scan(source(parquet))
