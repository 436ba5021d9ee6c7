"""Parse a member's Spark SQL into one SELECT tree, refusing everything that is not a read of named relations.

This is the gate that must hold whatever engine runs the plan: statements other than SELECT, several statements,
session variables, file reads (`parquet.`/path``), table-valued functions and functions that reach outside the
data (reflect, java_method, ...) never get past it. Functions sqlglot does not know are refused too, since the
transpiler could not translate them faithfully.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ParseError, SqlglotError, TokenError

from opencleanrooms.policy.model import QueryRejected

logging.getLogger("sqlglot").setLevel(logging.ERROR)

DIALECT = "spark"
MAX_NODES = 50_000  # a 90 KB query (AWS's limit on Clean Rooms SQL) of dense expressions stays below this
_BALANCE_ABOVE = 8


class CleanRoomsSpark(Spark):
    """Spark SQL as members write it for Clean Rooms: names may be quoted with backticks or double quotes (the
    association names contain spaces and hyphens), so only single quotes delimit strings."""

    class Tokenizer(Spark.Tokenizer):
        QUOTES = ["'"]
        IDENTIFIERS = ["`", '"']


_STATEMENTS = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command,
               exp.Cache, exp.Uncache, exp.Use, exp.Set, exp.Into, exp.Describe, exp.Pragma, exp.Transaction,
               exp.Commit, exp.Rollback, exp.Copy, exp.Analyze, exp.Show, exp.LoadData, exp.Kill)
# Spark's data-source prefixes: `parquet.`/path`` reads a file, not a table.
FILE_FORMATS = frozenset({"parquet", "csv", "json", "orc", "avro", "text", "delta", "binaryfile", "hive", "jdbc",
                          "xml", "iceberg", "hudi", "file", "s3", "s3a", "hdfs"})
# Functions that read files, call into the JVM, reveal the environment or are nondeterministic side channels.
FORBIDDEN_FUNCTIONS = frozenset({
    "READ_FILES", "READ_CSV", "READ_CSV_AUTO", "READ_PARQUET", "READ_JSON", "READ_JSON_AUTO", "READ_TEXT",
    "READ_BLOB", "PARQUET_SCAN", "REFLECT", "JAVA_METHOD", "TRY_REFLECT", "INPUT_FILE_NAME",
    "INPUT_FILE_BLOCK_START", "INPUT_FILE_BLOCK_LENGTH", "CURRENT_USER", "SESSION_USER", "USER",
    "CURRENT_CATALOG", "CURRENT_DATABASE", "CURRENT_SCHEMA", "VERSION", "GETENV", "CURRENT_SETTING", "SECRET",
    "SPARK_PARTITION_ID", "MONOTONICALLY_INCREASING_ID", "SLEEP", "RAISE_ERROR", "ASSERT_TRUE", "URL_DECODE",
    "JSON_TUPLE", "FROM_XML", "XPATH",
})
# Lambdas are refused because their variables carry values no lineage can follow (a comparison inside
# `exists(array(col), x -> x = 'a')` would escape comparison controls).
_FORBIDDEN_NODES = (exp.CurrentUser, exp.Lateral, exp.Pivot, exp.Unnest, exp.TableSample, exp.Hint,
                    exp.Parameter, exp.SessionParameter, exp.Lambda, exp.Values)
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_SQLGLOT_NOISE = re.compile(r"\x1b\[[0-9;]*m|<class '[^']*'>|<Token [^>]*>")


def reject(message: str, code: str = "MALFORMED_QUERY") -> None:
    """Raise the refusal; here so every module refuses the same way."""
    raise QueryRejected(code, message)


def fragment(node: exp.Expression, limit: int = 80) -> str:
    """The SQL of a node, as the member would recognise it, shortened for messages."""
    try:
        shown = node.copy()
        for identifier in shown.find_all(exp.Identifier):
            if identifier.quoted and _PLAIN_NAME.fullmatch(identifier.name):
                identifier.set("quoted", False)
        text = shown.sql(DIALECT)
    except Exception:  # noqa: BLE001  (a message decoration only)
        text = node.key
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse(sql: str) -> exp.Expression:
    """One SELECT (with WITH, set operations) or refuse with MALFORMED_QUERY."""
    if not sql or not sql.strip():
        reject("The query is empty.")
    try:
        statements = [s for s in sqlglot.parse(sql, read=CleanRoomsSpark) if s is not None and not isinstance(s, exp.Semicolon)]
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first.get("line") else ""
        reject(f"The query is not valid Spark SQL{where}: {clean(first.get('description') or 'syntax error')}.")
    except TokenError:
        reject("The query is not valid Spark SQL: unterminated string, quoted identifier or comment.")
    except RecursionError:
        reject("The query is nested too deeply to be analysed.")
    except SqlglotError as error:
        reject(f"The query is not valid Spark SQL: {clean(str(error))}.")
    if not statements:
        reject("The query is empty.")
    if len(statements) > 1:
        reject(f"A protected query must be a single SELECT statement; it has {len(statements)} statements.")
    tree = statements[0]
    while isinstance(tree, exp.Subquery) and not tree.args.get("alias") and not tree.args.get("order") \
            and not tree.args.get("limit"):
        tree = tree.this
    if not isinstance(tree, (exp.Select, exp.SetOperation)):
        reject(f"A protected query must be a SELECT statement, not {_kind(tree)}.")
    try:
        _check_nodes(tree)
        count = 0
        for node in tree.walk():  # comments never reach the engine's SQL
            node.comments = None
            count += 1
        if count > MAX_NODES:
            reject(f"The query is too complex to be analysed ({count} syntax nodes; at most {MAX_NODES}).")
        tree = _balance(tree)
    except RecursionError:
        reject("The query is nested too deeply to be analysed.")
    return tree


def _balance(tree: exp.Expression) -> exp.Expression:
    """Rebuild long AND/OR chains as balanced trees. The parser builds `a OR b OR c ...` left-deep, and the
    qualifier's cost grows with the square of a chain's depth (3,000 ORs took over 20 s); AND and OR are
    associative, so a balanced tree means the same."""
    for kind in (exp.And, exp.Or):
        for node in list(tree.find_all(kind)):
            if node.parent is None and node is not tree or isinstance(node.parent, kind):
                continue  # not the top of a chain (or already replaced)
            operands = list(node.flatten(unnest=False))  # keep parentheses: they carry precedence
            if len(operands) <= _BALANCE_ABOVE:
                continue
            balanced = _build(kind, operands)
            if node is tree:
                tree = balanced
            else:
                node.replace(balanced)
    return tree


def _build(kind: type, operands: list[exp.Expression]) -> exp.Expression:
    if len(operands) == 1:
        return operands[0]
    middle = len(operands) // 2
    return kind(this=_build(kind, operands[:middle]), expression=_build(kind, operands[middle:]))


def _check_nodes(tree: exp.Expression) -> None:
    for node in tree.walk():
        if isinstance(node, _STATEMENTS):
            reject(f"A protected query must be a single SELECT statement; it contains {_kind(node)}.")
        if isinstance(node, _FORBIDDEN_NODES):
            reject(f"{_describe(node)} is not supported in protected queries: {fragment(node)}.")
        if isinstance(node, exp.Table):
            _check_relation(node)
        elif isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
            if name in FORBIDDEN_FUNCTIONS:
                reject(f"Function {name} is not allowed in protected queries: {fragment(node)}.")
            if isinstance(node, exp.Anonymous):
                reject(f"Function {node.name} is not supported: {fragment(node)}.")
        elif isinstance(node, exp.With) and node.args.get("recursive"):
            reject("Recursive common table expressions (WITH RECURSIVE) are not supported in protected queries.")
        elif isinstance(node, exp.Group) and not any(node.args.get(k) for k in ("expressions", "rollup", "cube",
                                                                                 "grouping_sets", "all", "totals")):
            reject("GROUP BY must name at least one expression.")
        elif isinstance(node, exp.Select) and not node.expressions:
            reject("A SELECT must select at least one expression.")


def _check_relation(table: exp.Table) -> None:
    if not isinstance(table.this, exp.Identifier):
        if isinstance(table.this, exp.Placeholder):
            return  # a parameter as a table name: refused when parameters are bound
        reject(f"Table-valued functions are not supported in protected queries: {fragment(table)}.")
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        prefix = (table.args.get("catalog") or table.args.get("db")).name.lower()
        if table.db.lower() in FILE_FORMATS or prefix in FILE_FORMATS:
            reject(f"Reading files is not allowed in protected queries: {fragment(table)}.")
        reject(f"Table {fragment(table)} is not a table associated with this collaboration: name tables by "
               f"their configured table association name only.", "RESOURCE_NOT_FOUND")
    for arg in ("joins", "laterals", "pivots", "version", "when", "changes", "sample", "format"):
        if table.args.get(arg):
            reject(f"This form of table reference is not supported: {fragment(table)}.")


def _describe(node: exp.Expression) -> str:
    names = {exp.Lateral: "LATERAL VIEW", exp.Pivot: "PIVOT", exp.Unnest: "UNNEST", exp.TableSample: "TABLESAMPLE",
             exp.Hint: "A query hint", exp.Parameter: "A variable", exp.SessionParameter: "A session variable",
             exp.CurrentUser: "CURRENT_USER", exp.Lambda: "A lambda (higher-order function)",
             exp.Values: "An inline table (VALUES)"}
    return next((text for kind, text in names.items() if isinstance(node, kind)), node.key.upper())


def _kind(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    if isinstance(node, exp.Into):
        return "SELECT ... INTO"
    return node.key.upper()


def clean(message: str) -> str:
    """A parser or optimizer message fit for a member: no library internals, escape codes or long dumps."""
    message = _SQLGLOT_NOISE.sub("", message).replace("sqlglot", "parser").strip()
    return message[:200]
