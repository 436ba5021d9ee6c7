"""Arrow table -> result files (CSV with a header row, or Parquet), each written under a temporary name and renamed
into place, so a reader never sees half a file."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile

import pyarrow as pa

FORMATS = ("CSV", "PARQUET")
EXTENSIONS = {"CSV": ".csv", "PARQUET": ".parquet"}
CONTENT_TYPES = {"CSV": "text/csv", "PARQUET": "application/vnd.apache.parquet"}


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"result format must be CSV or PARQUET, got {fmt!r}")
    return fmt


def split(table: pa.Table, *, single_file: bool, max_rows_per_file: int) -> list[pa.Table]:
    """The parts to write: one for a single file (or an empty result), else slices of at most max_rows_per_file."""
    if single_file or table.num_rows <= max_rows_per_file:
        return [table]
    return [table.slice(start, max_rows_per_file) for start in range(0, table.num_rows, max_rows_per_file)]


def write_file(table: pa.Table, fmt: str, path: str) -> None:
    """Write `table` to `path` atomically (temp file in the same directory, then rename)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    os.close(fd)
    try:
        if fmt == "PARQUET":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp, compression="snappy")
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(csv_ready(table), tmp, pacsv.WriteOptions(include_header=True))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def csv_ready(table: pa.Table) -> pa.Table:
    """Columns CSV cannot hold as they are become text: nested values as JSON, binary as base64."""
    columns = []
    for column in table.columns:
        t = column.type
        if pa.types.is_nested(t):
            column = pa.array([None if v is None else json.dumps(v, default=str, separators=(",", ":"))
                               for v in column.to_pylist()], pa.string())
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            column = pa.array([None if v is None else base64.b64encode(v).decode("ascii")
                               for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)
