"""The data catalog: what an AWS Glue table reference (account, region, database, table) resolves to.

OpenCleanRooms has no Glue. Its catalog maps each account's (region, database, table) to Parquet or CSV files on
local disk or on an S3-compatible endpoint; column names and types come from the data itself, read with DuckDB.
Entries live in the server's database (shared by every server process, managed with `opencleanrooms catalog`).
This package knows nothing of HTTP or of Clean Rooms API shapes.

    source = resolve(conn, "111111111111", "us-east-1", "advertiser", "customers")   # TableSource | None
    columns = read_schema(source, s3_settings)                                       # [Column(name, type)]
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.catalog import store
from opencleanrooms.catalog.errors import CatalogError, InvalidEntry, TableNotFound, TableUnreadable
from opencleanrooms.catalog.model import ANY_REGION, FORMATS, Column, TableSource, make_source
from opencleanrooms.catalog.reader import (
    DEFAULT_CACHE,
    DataFile,
    Scan,
    SchemaCache,
    list_files,
    locate_scan,
    prepare_scan,
    read_schema,
)
from opencleanrooms.catalog.s3 import S3Settings
from opencleanrooms.catalog.tomlfile import load_catalog_file


def resolve(conn: sa.Connection, account_id: str, region: str, database: str, table: str) -> TableSource | None:
    """The account's entry for database.table in that region (an exact-region entry first, then an any-region
    one), or None. Names are compared case-insensitively, as Glue does."""
    return store.get(conn, account_id, region, database, table)


def resolve_many(conn: sa.Connection, keys) -> dict[tuple[str, str, str, str], TableSource | None]:
    """`resolve` of each (account_id, region, database, table) key, in one statement for up to 200 keys:
    key -> entry or None."""
    return store.get_many(conn, keys)


def require_table(conn: sa.Connection, account_id: str, region: str, database: str, table: str) -> TableSource:
    """Like resolve, but raises TableNotFound."""
    source = resolve(conn, account_id, region, database, table)
    if source is None:
        raise TableNotFound(account_id, database, table)
    return source


__all__ = [
    "ANY_REGION", "FORMATS", "CatalogError", "Column", "DEFAULT_CACHE", "DataFile", "InvalidEntry", "S3Settings",
    "Scan", "SchemaCache", "TableNotFound", "TableSource", "TableUnreadable", "list_files", "load_catalog_file",
    "locate_scan", "make_source", "prepare_scan", "read_schema", "require_table", "resolve", "resolve_many",
    "store",
]
