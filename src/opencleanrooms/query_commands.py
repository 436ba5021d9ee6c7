"""`opencleanrooms query show|fetch|log`: an operator's view of protected queries, read from the database.

These commands speak for the server's operator (they read the database directly, with no AWS credentials), so
they show any query by id; members use the API.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable


def register_cli(commands, *, storage_flags: Callable[[argparse.ArgumentParser], None],
                 settings_from_args: Callable[[argparse.Namespace], object]) -> None:
    query = commands.add_parser("query", help="show protected queries, their results and the query log")
    actions = query.add_subparsers(metavar="ACTION")

    def bind(parser, handler):
        parser.set_defaults(func=lambda args: handler(args, settings_from_args(args)))

    show = actions.add_parser("show", help="a query's status, error or result location, and its first rows")
    storage_flags(show)
    show.add_argument("query_id")
    show.add_argument("--rows", type=int, default=20, help="result rows to print (default 20)")
    bind(show, _show)

    fetch = actions.add_parser("fetch", help="write a query's result to a local .csv or .parquet file")
    storage_flags(fetch)
    fetch.add_argument("query_id")
    fetch.add_argument("--output", required=True, help="file to write; its extension picks the format")
    bind(fetch, _fetch)

    logs = actions.add_parser("log", help="the query log of a membership (when its collaboration logs queries)")
    storage_flags(logs)
    logs.add_argument("--membership-id", required=True)
    logs.add_argument("--limit", type=int, default=100)
    bind(logs, _log)


def _query(settings, query_id: str):
    from opencleanrooms.app import open_database
    from opencleanrooms.storage import protected_queries as store

    db = open_database(settings)
    with db.read() as conn:
        row = store.get(conn, query_id)
    db.dispose()
    if row is None:
        raise ValueError(f"no protected query {query_id}")
    return row


def _result_table(settings, row):
    """The result as its first receiver got it (every receiver gets the same rows)."""
    from opencleanrooms.catalog import S3Settings
    from opencleanrooms.results import ResultWriteError, read_result

    deliveries = row["doc"].get("deliveries") or []
    if not deliveries:
        raise ValueError(f"query {row['id']} has no result (status {row['status']})")
    location = deliveries[0]["location"]
    try:
        return location, read_result(location, S3Settings.from_server_settings(settings))
    except ResultWriteError as exc:
        raise ValueError(f"cannot read the result of query {row['id']}: {exc.message}") from None


def _show(args: argparse.Namespace, settings) -> int:
    row = _query(settings, args.query_id)
    print(f"query {row['id']}: {row['status']} (membership {row['membership_id']}, account {row['account_id']})")
    error = row["doc"].get("error")
    if error:
        print(f"  error {error['code']}: {error['message']}")
    if row["status"] != "SUCCESS":
        return 0 if not error else 1
    for delivery in row["doc"].get("deliveries") or []:
        print(f"  result for {delivery['accountId']}: {delivery['location']}")
    _, table = _result_table(settings, row)
    print(f"  {table.num_rows} rows:")
    print("  " + "\t".join(table.column_names))
    for record in table.slice(0, max(args.rows, 0)).to_pylist():
        print("  " + "\t".join("" if v is None else str(v) for v in record.values()))
    return 0


def _fetch(args: argparse.Namespace, settings) -> int:
    row = _query(settings, args.query_id)
    _, table = _result_table(settings, row)
    if args.output.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table, args.output)
    elif args.output.endswith(".csv"):
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, args.output)
    else:
        raise ValueError("--output must end in .csv or .parquet")
    print(f"wrote {table.num_rows} rows to {args.output}")
    return 0


def _log(args: argparse.Namespace, settings) -> int:
    from opencleanrooms.app import open_database
    from opencleanrooms.storage import protected_queries as store

    db = open_database(settings)
    with db.read() as conn:
        entries = store.log_for_membership(conn, args.membership_id, args.limit)
    db.dispose()
    for entry in entries:
        json.dump({k: entry[k] for k in ("query_id", "runner_account_id", "status", "create_time", "end_time",
                                         "error_code", "error_message", "query_text")}, sys.stdout)
        print()
    return 0
