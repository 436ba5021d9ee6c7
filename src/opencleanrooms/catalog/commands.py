"""Managing the catalog: functions over a Database, and the `opencleanrooms catalog ...` subcommands.

`register_cli` adds the subcommands to the top-level parser; the command line module passes its storage flags and
its settings builder, so the catalog commands take `--config`, `--data-dir` and `--database-url` like the others.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from importlib import resources

from opencleanrooms.catalog import entity_resolution, reader, store
from opencleanrooms.catalog.errors import TableUnreadable
from opencleanrooms.catalog.model import ANY_REGION, FORMATS, TableSource, make_source
from opencleanrooms.catalog.s3 import S3Settings
from opencleanrooms.catalog.tomlfile import load_catalog_entries


def add_table(db, *, account_id: str, database: str, table: str, location: str, region: str | None = None,
              format: str | None = None, header: bool | None = None,  # noqa: A002
              delimiter: str | None = None, base_dir: str | None = None,
              check: Callable[[TableSource], object] | None = None) -> tuple[TableSource, bool]:
    """Add or replace an entry; returns it and whether it replaced one. Raises InvalidEntry. `check` runs on the
    new entry before anything is stored (for example `read_schema`), so an entry it refuses is never added."""
    source = make_source(account_id=account_id, region=region, database=database, table=table,
                         location=location, format=format, header=header, delimiter=delimiter, base_dir=base_dir)
    if check is not None:
        check(source)
    with db.write() as conn:
        replaced = store.put(conn, source)
    return source, replaced


def remove_table(db, *, account_id: str, database: str, table: str, region: str | None = None) -> bool:
    """Remove the entry for that region (default: the any-region entry); False when there was none."""
    with db.write() as conn:
        return store.delete(conn, account_id, region or ANY_REGION, database, table)


def list_tables(db, account_id: str | None = None) -> list[TableSource]:
    with db.read() as conn:
        return store.all_entries(conn, account_id)


def import_file(db, path: str | os.PathLike) -> list[TableSource]:
    """Add or replace every table (and ID namespace and ID mapping workflow) of a TOML catalog file, all in one
    transaction. Raises InvalidEntry."""
    sources, namespaces, workflows = load_catalog_entries(path)
    with db.write() as conn:
        for source in sources:
            store.put(conn, source)
        for namespace in namespaces:
            entity_resolution.put_namespace(conn, namespace)
        for workflow in workflows:
            entity_resolution.put_workflow(conn, workflow)
    return sources


def samples_catalog_path() -> str:
    """The catalog file of the bundled sample tables."""
    return str(resources.files("opencleanrooms.samples").joinpath("catalog.toml"))


def format_entry(source: TableSource) -> str:
    options = "".join(f" {k}={v!r}" for k, v in source.options.items()) if source.format != "parquet" else ""
    return (f"{source.account_id}  {source.region}  {source.database}.{source.table}  "
            f"{source.format or 'auto'}  {source.location}{options}")


# ------------------------------------------------------------------------------------------------ command line


def register_cli(commands, *, storage_flags: Callable[[argparse.ArgumentParser], None],
                 settings_from_args: Callable[[argparse.Namespace], object]) -> None:
    """Add `catalog add|list|remove|import|schema` to the top-level subparsers."""
    catalog = commands.add_parser("catalog", help="manage the tables that Glue table references resolve to")
    actions = catalog.add_subparsers(metavar="ACTION")

    def bind(parser, handler):
        parser.set_defaults(func=lambda args: handler(args, settings_from_args))

    add = actions.add_parser("add", help="add (or replace) a table: Parquet or CSV files, local or on S3")
    storage_flags(add)
    _table_flags(add)
    add.add_argument("--location", required=True,
                     help="a file, a directory, a glob (/data/*.parquet) or s3://bucket/prefix/ (relative paths "
                     "are resolved against the current directory)")
    add.add_argument("--format", choices=FORMATS, help="default: from the files' extension")
    add.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                     help="CSV: the first line holds column names (default: yes)")
    add.add_argument("--delimiter", help="CSV: one character, \\t for tab (default: detected)")
    add.add_argument("--no-check", action="store_true", help="add the table without reading its data first "
                     "(for data that is not there yet)")
    bind(add, _add)

    listing = actions.add_parser("list", help="list the catalog's tables")
    storage_flags(listing)
    listing.add_argument("--account-id", help="only this account's tables")
    bind(listing, _list)

    remove = actions.add_parser("remove", help="remove a table from the catalog")
    storage_flags(remove)
    _table_flags(remove)
    bind(remove, _remove)

    imp = actions.add_parser("import", help="add (or replace) the tables of a TOML catalog file")
    storage_flags(imp)
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", metavar="FILE.toml", help="the catalog file")
    source.add_argument("--samples", action="store_true",
                        help="the bundled sample tables (accounts 111111111111 and 222222222222)")
    bind(imp, _import)

    schema = actions.add_parser("schema", help="show the columns a table resolves to, as Clean Rooms sees them")
    storage_flags(schema)
    _table_flags(schema)
    bind(schema, _schema)


def _table_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account-id", required=True, help="12-digit account id owning the table")
    parser.add_argument("--region", help="region of the account's Glue catalog (default: * for any region)")
    parser.add_argument("--database", required=True, help="Glue database name")
    parser.add_argument("--table", required=True, help="Glue table name")


def _open(args, settings_from_args):
    from opencleanrooms.app import open_database

    settings = settings_from_args(args)
    return open_database(settings), settings


def _add(args, settings_from_args) -> int:
    db, settings = _open(args, settings_from_args)
    s3_settings = S3Settings.from_server_settings(settings)
    columns = []

    def check(source: TableSource) -> None:
        columns.extend(reader.read_schema(source, s3_settings, cache=None))

    try:
        source, replaced = add_table(db, account_id=args.account_id, region=args.region, database=args.database,
                                     table=args.table, location=args.location, format=args.format,
                                     header=args.header, delimiter=args.delimiter,
                                     check=None if args.no_check else check)
    except TableUnreadable as exc:
        print(f"opencleanrooms: {exc}; nothing was added (--no-check adds a table whose data is not readable "
              f"yet)", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(("replaced: " if replaced else "added: ") + format_entry(source))
    _print_columns(columns)
    return 0


def _list(args, settings_from_args) -> int:
    db, _settings = _open(args, settings_from_args)
    try:
        for source in list_tables(db, args.account_id):
            print(format_entry(source))
    finally:
        db.dispose()
    return 0


def _remove(args, settings_from_args) -> int:
    db, _settings = _open(args, settings_from_args)
    try:
        if not remove_table(db, account_id=args.account_id, region=args.region, database=args.database,
                            table=args.table):
            print(f"no such table: {args.database}.{args.table} of account {args.account_id} in region "
                  f"{args.region or ANY_REGION}", file=sys.stderr)
            return 1
    finally:
        db.dispose()
    return 0


def _import(args, settings_from_args) -> int:
    db, _settings = _open(args, settings_from_args)
    try:
        sources = import_file(db, samples_catalog_path() if args.samples else args.file)
    finally:
        db.dispose()
    print(f"imported {len(sources)} table(s)")
    for source in sources:
        print("  " + format_entry(source))
    return 0


def _schema(args, settings_from_args) -> int:
    from opencleanrooms.catalog.errors import TableNotFound

    db, settings = _open(args, settings_from_args)
    try:
        with db.read() as conn:
            from opencleanrooms.catalog import require_table

            source = require_table(conn, args.account_id, args.region or ANY_REGION, args.database, args.table)
    except TableNotFound as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(format_entry(source))
    return 0 if _print_schema(source, S3Settings.from_server_settings(settings), warn_only=False) else 1


def _print_schema(source: TableSource, s3_settings: S3Settings, *, warn_only: bool) -> bool:
    try:
        columns = reader.read_schema(source, s3_settings, cache=None)
    except TableUnreadable as exc:
        print(("warning: " if warn_only else "") + str(exc), file=sys.stderr)
        return False
    _print_columns(columns)
    return True


def _print_columns(columns) -> None:
    width = max((len(c.name) for c in columns), default=0)
    for column in columns:
        print(f"  {column.name.ljust(width)}  {column.type}")
