"""Catalog entries (`TableSource`), schema columns, and the rules an entry must follow.

An entry maps (account id, region, database, table) to a location holding Parquet or CSV data:

- a local file, a local directory (every data file below it), or a local glob (`/data/parts/*.parquet`, `**`
  allowed), stored as an absolute path;
- `s3://bucket/key` (an object, or the objects below `key/` when no object has that exact key),
  `s3://bucket/prefix/` (the objects below the prefix) or `s3://bucket/prefix/*.parquet` (globs in the last
  segment only).

Database and table names are stored in lower case, as AWS Glue stores them, so lookups ignore case. The region
`*` matches any region; an entry for the exact region wins over it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from opencleanrooms.catalog.errors import InvalidEntry

ANY_REGION = "*"
FORMATS = ("parquet", "csv")

# The patterns and lengths of AWS Clean Rooms' GlueTableReference (botocore model, cleanrooms 2022-02-17).
_DATABASE_NAME = re.compile(r"[a-zA-Z0-9_](([a-zA-Z0-9_]+-)*([a-zA-Z0-9_]+))?")
_TABLE_NAME = re.compile(r"[a-zA-Z0-9_](([a-zA-Z0-9_ ]+-)*([a-zA-Z0-9_ ]+))?")
_NAME_MAX = 128
_ACCOUNT_ID = re.compile(r"\d{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
GLOB_CHARS = frozenset("*?[")

# Extension -> format. Compressed CSV is read by DuckDB directly.
_EXTENSIONS = {
    ".parquet": "parquet", ".parq": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "csv", ".csv.gz": "csv", ".tsv.gz": "csv", ".csv.zst": "csv",
}


@dataclass(frozen=True)
class TableSource:
    """Where a catalog table's data lives and how to read it."""

    account_id: str
    region: str  # a region name, or ANY_REGION
    database: str
    table: str
    location: str  # absolute local path, local glob, or s3:// URI
    format: str | None = None  # "parquet" | "csv"; None: decided from the files' extensions when read
    header: bool = True  # CSV only: the first line holds the column names
    delimiter: str | None = None  # CSV only: None lets DuckDB detect it

    @property
    def is_s3(self) -> bool:
        return self.location.startswith("s3://")

    @property
    def options(self) -> dict:
        """The CSV options as stored (empty for Parquet)."""
        if self.format == "parquet":
            return {}
        options: dict = {"header": self.header}
        if self.delimiter is not None:
            options["delimiter"] = self.delimiter
        return options


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Glue/Hive type name: string, bigint, decimal(10,2), array<int>, ...


def format_for_name(name: str) -> str | None:
    """The format a file name's extension announces, or None."""
    lower = name.lower()
    for ext, fmt in _EXTENSIONS.items():
        if lower.endswith(ext):
            return fmt
    return None


def has_glob(text: str) -> bool:
    return any(ch in GLOB_CHARS for ch in text)


def make_source(
    *,
    account_id: str,
    database: str,
    table: str,
    location: str,
    region: str | None = None,
    format: str | None = None,  # noqa: A002 - the field's name
    header: bool | None = None,
    delimiter: str | None = None,
    base_dir: str | os.PathLike | None = None,
) -> TableSource:
    """A validated, normalized entry. Relative local locations are resolved against `base_dir` (default: the
    current directory). Raises InvalidEntry."""
    account_id = str(account_id).strip()
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise InvalidEntry(f"account id must be 12 digits, got {account_id!r}")
    region = (region or ANY_REGION).strip()
    if region != ANY_REGION and not _REGION.fullmatch(region):
        raise InvalidEntry(f"region must be a region name such as us-east-1 (or * for any), got {region!r}")
    database = _name(database, _DATABASE_NAME, "database name")
    table = _name(table, _TABLE_NAME, "table name")
    location = normalize_location(location, base_dir)
    if format is not None:
        format = str(format).strip().lower()  # noqa: A001
        if format not in FORMATS:
            raise InvalidEntry(f"format must be parquet or csv, got {format!r}")
    else:
        last = location.rstrip("/").rsplit("/", 1)[-1] if not location.endswith("/") else ""
        format = format_for_name(last) if last else None  # noqa: A001
    if format == "parquet" and (header is not None or delimiter is not None):
        raise InvalidEntry("header and delimiter apply to CSV tables only")
    if delimiter is not None:
        if delimiter == "\\t":
            delimiter = "\t"
        if len(delimiter) != 1 or delimiter in "\r\n\"":
            raise InvalidEntry(f"delimiter must be one character (not a quote or line break), got {delimiter!r}")
    if header is not None and not isinstance(header, bool):
        raise InvalidEntry(f"header must be true or false, got {header!r}")
    return TableSource(account_id=account_id, region=region, database=database, table=table, location=location,
                       format=format, header=True if header is None else header, delimiter=delimiter)


def normalize_location(location: str, base_dir: str | os.PathLike | None = None) -> str:
    location = str(location).strip()
    if not location:
        raise InvalidEntry("location must not be empty")
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://"):].partition("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise InvalidEntry(f"{location!r} does not name a valid S3 bucket")
        if has_glob(bucket) or ("/" in key and has_glob(key.rsplit("/", 1)[0])):
            raise InvalidEntry(f"{location!r}: globs are supported only in the last segment of an s3:// location")
        return location
    if location.startswith("file://"):
        location = location[len("file://"):]
    elif re.match(r"[a-zA-Z][a-zA-Z0-9+.\-]*://", location):
        raise InvalidEntry(f"{location!r}: locations are local paths or s3:// URIs")
    path = os.path.expanduser(location)
    if not os.path.isabs(path):
        path = os.path.join(os.fspath(base_dir) if base_dir is not None else os.getcwd(), path)
    return os.path.normpath(path)


def _name(value: str, pattern: re.Pattern, what: str) -> str:
    value = str(value).strip()
    if not value or len(value) > _NAME_MAX or not pattern.fullmatch(value):
        raise InvalidEntry(f"{what} {value!r} is not a valid AWS Glue name (letters, digits, underscores and "
                           f"hyphens, at most {_NAME_MAX} characters)")
    return value.lower()
