"""Rule-based exact-match ID mapping, run with DuckDB over two catalog tables: what an AWS Entity Resolution
rule-based ID mapping workflow produces, for the simplest rule (every key column equal).

A source record maps to a target record when, for every position i, the normalized value of the source's i-th key
column equals the normalized value of the target's i-th key column. Normalization: cast to text, trim, collapse
runs of whitespace to one space, lower-case; a record whose normalized key has an empty or NULL part matches
nothing. The output is the distinct (sourceid, targetid) pairs of the records' ID columns (as text, non-NULL),
written as one Parquet file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import duckdb

SOURCE_COLUMN = "sourceid"
TARGET_COLUMN = "targetid"


@dataclass(frozen=True)
class Side:
    """One input: the SQL of its scan (`read_parquet([...])` ...), its ID column and key columns."""

    scan_sql: str
    id_column: str
    key_columns: tuple[str, ...]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _normalized(column: str) -> str:
    return f"lower(regexp_replace(trim(CAST({_quote(column)} AS VARCHAR)), '\\s+', ' ', 'g'))"


def _keyed(side: Side, alias: str) -> str:
    keys = ", ".join(f"{_normalized(c)} AS k{i}" for i, c in enumerate(side.key_columns))
    usable = " AND ".join(f"coalesce(k{i}, '') <> ''" for i in range(len(side.key_columns)))
    return (f"(SELECT * FROM (SELECT CAST({_quote(side.id_column)} AS VARCHAR) AS id, {keys} FROM {side.scan_sql}) "
            f"WHERE id IS NOT NULL AND {usable}) AS {alias}")


def build_mapping(source: Side, target: Side, out_path: str) -> int:
    """Write the mapping to `out_path` (atomically: a partial file is never left there); returns its row count.
    Raises duckdb.Error when the data cannot be read."""
    if len(source.key_columns) != len(target.key_columns) or not source.key_columns:
        raise ValueError("both sides need the same, non-zero number of key columns")
    on = " AND ".join(f"s.k{i} = t.k{i}" for i in range(len(source.key_columns)))
    query = (f"SELECT DISTINCT s.id AS {SOURCE_COLUMN}, t.id AS {TARGET_COLUMN} FROM {_keyed(source, 's')} "
             f"JOIN {_keyed(target, 't')} ON {on} ORDER BY 1, 2")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    partial = out_path + ".partial"
    conn = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        conn.execute(f"COPY ({query}) TO '{partial.replace(chr(39), chr(39) * 2)}' (FORMAT PARQUET)")
        count = conn.execute(
            f"SELECT count(*) FROM read_parquet('{partial.replace(chr(39), chr(39) * 2)}')").fetchone()[0]
    finally:
        conn.close()
    os.replace(partial, out_path)
    return int(count)
