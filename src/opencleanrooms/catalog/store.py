"""Catalog entries in the server's database, so that every server process and the CLI see the same catalog.

The table is defined on the project's shared metadata; `create_table` is the migration step that adds it to an
existing database.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from opencleanrooms.catalog.model import ANY_REGION, TableSource
from opencleanrooms.storage.schema import JSONDoc, metadata

catalog_tables = sa.Table(
    "catalog_tables",
    metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("region", sa.String(32), primary_key=True),  # a region name, or "*" for any region
    sa.Column("database_name", sa.String(128), primary_key=True),  # lower case
    sa.Column("table_name", sa.String(128), primary_key=True),  # lower case
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("format", sa.String(16), nullable=True),  # parquet | csv | NULL (from the files' extensions)
    sa.Column("options", JSONDoc, nullable=False),  # CSV: {"header": bool, "delimiter"?: str}
    sa.Column("create_time", sa.Float, nullable=False),
    sa.Column("update_time", sa.Float, nullable=False),
)
T = catalog_tables


def create_table(conn: sa.Connection) -> None:
    """Migration step: create the catalog table if it is not there yet."""
    catalog_tables.create(conn, checkfirst=True)


def put(conn: sa.Connection, source: TableSource) -> bool:
    """Insert or replace an entry; True when it replaced one."""
    now = time.time()
    key = _key(source.account_id, source.region, source.database, source.table)
    existing = conn.execute(sa.select(T.c.create_time).where(*key)).scalar()
    values = dict(location=source.location, format=source.format, options=source.options, update_time=now)
    if existing is None:
        conn.execute(T.insert().values(account_id=source.account_id, region=source.region,
                                       database_name=source.database, table_name=source.table,
                                       create_time=now, **values))
        return False
    conn.execute(T.update().where(*key).values(**values))
    return True


def delete(conn: sa.Connection, account_id: str, region: str, database: str, table: str) -> bool:
    return conn.execute(T.delete().where(*_key(account_id, region, database.lower(), table.lower()))).rowcount > 0


def get(conn: sa.Connection, account_id: str, region: str, database: str, table: str) -> TableSource | None:
    """The entry for this region, else the account's any-region entry, else None."""
    rows = conn.execute(
        sa.select(T).where(T.c.account_id == account_id, T.c.region.in_([region, ANY_REGION]),
                           T.c.database_name == database.lower(), T.c.table_name == table.lower())
    ).mappings().all()
    rows = sorted(rows, key=lambda row: row["region"] == ANY_REGION)
    return _source(rows[0]) if rows else None


# Keys looked up per statement by get_many: a few parameters each, well under every backend's limit of bound
# parameters in one statement.
_KEYS_PER_STATEMENT = 200


def get_many(conn: sa.Connection, keys) -> dict[tuple[str, str, str, str], TableSource | None]:
    """`get` of each (account_id, region, database, table) key, in one statement for up to 200 distinct keys:
    key -> entry (None when there is none). The entry for a key's region wins over the any-region one, as in
    `get`."""
    wanted = list(dict.fromkeys(keys))
    found: dict = {}
    for start in range(0, len(wanted), _KEYS_PER_STATEMENT):
        chunk = wanted[start:start + _KEYS_PER_STATEMENT]
        rows = conn.execute(sa.select(T).where(sa.or_(*(
            sa.and_(T.c.account_id == account_id, T.c.region.in_([region, ANY_REGION]),
                    T.c.database_name == database.lower(), T.c.table_name == table.lower())
            for account_id, region, database, table in chunk)))).mappings().all()
        by_name: dict = {}
        for row in rows:
            by_name.setdefault((row["account_id"], row["database_name"], row["table_name"]), []).append(row)
        for account_id, region, database, table in chunk:
            candidates = [row for row in by_name.get((account_id, database.lower(), table.lower()), [])
                          if row["region"] in (region, ANY_REGION)]
            candidates.sort(key=lambda row: row["region"] == ANY_REGION)
            found[(account_id, region, database, table)] = _source(candidates[0]) if candidates else None
    return found


def all_entries(conn: sa.Connection, account_id: str | None = None) -> list[TableSource]:
    query = sa.select(T).order_by(T.c.account_id, T.c.region, T.c.database_name, T.c.table_name)
    if account_id is not None:
        query = query.where(T.c.account_id == account_id)
    return [_source(row) for row in conn.execute(query).mappings()]


def _key(account_id: str, region: str, database: str, table: str):
    return (T.c.account_id == account_id, T.c.region == region, T.c.database_name == database,
            T.c.table_name == table)


def _source(row) -> TableSource:
    options = row["options"] or {}
    return TableSource(account_id=row["account_id"], region=row["region"], database=row["database_name"],
                       table=row["table_name"], location=row["location"], format=row["format"],
                       header=bool(options.get("header", True)), delimiter=options.get("delimiter"))
