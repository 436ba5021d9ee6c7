"""Resolve the query's relations to the collaboration's tables and every column to its table.

Relations are looked up by configured table association name (Spark compares names case-insensitively); a name
that is neither a CTE in scope nor an associated table is RESOURCE_NOT_FOUND, so no other data (another
collaboration's table, a catalog table, a file) is ever named in the plan. Columns are resolved by sqlglot's
qualifier against a schema holding only each table's allowed columns: a column that is not allowed does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from opencleanrooms.policy import id_mapping
from opencleanrooms.policy.model import QueryRejected, QueryRequest, TableInfo
from opencleanrooms.policy.parse import DIALECT, clean, parse, reject

RULE_TYPES = ("AGGREGATION", "LIST", "CUSTOM")


@dataclass
class Relations:
    """The associated tables a query reads, in a deterministic order, and their single rule type."""

    names: tuple[str, ...]
    tables: dict[str, TableInfo]
    rule_type: str


class ParsedQuery:
    """A query's text parsed once, for a caller that needs the relations it names before it plans it: `names`, the
    lower-case names of every relation the text names (CTE names included), a superset of the tables planning
    resolves, so that the caller looks up only those rather than every table it stores. Planning takes the tree
    (QueryRequest.parsed), so the text is parsed once. A text that cannot be parsed names none; planning refuses it
    with the reason."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        try:
            self._tree: exp.Expression | None = parse(sql)
            self.names = frozenset(table.name.lower() for table in self._tree.find_all(exp.Table) if table.name)
        except (QueryRejected, SqlglotError, RecursionError):
            self._tree, self.names = None, frozenset()

    def take(self, sql: str) -> exp.Expression | None:
        """The tree of `sql`, once (planning rewrites it), or None."""
        if sql != self.sql:
            return None
        tree, self._tree = self._tree, None
        return tree


def relations(tree: exp.Expression, request: QueryRequest) -> Relations:
    """Find the base relations (CTE references excluded), check they exist and share one rule type."""
    lookup = {name.lower(): info for name, info in request.tables.items()}
    found: dict[str, TableInfo] = {}
    try:
        scopes = list(traverse_scope(tree))
    except (OptimizeError, SqlglotError) as error:
        reject(f"The query's structure cannot be analysed: {clean(str(error))}")
    except RecursionError:
        reject("The query is nested too deeply to be analysed.")
    for scope in scopes:
        for source in scope.sources.values():
            if not isinstance(source, exp.Table):
                continue
            name = source.name.lower()
            if name not in lookup:
                reject(f"Table `{source.name}` is not a table associated with this collaboration.",
                       "RESOURCE_NOT_FOUND")
            found[name] = lookup[name]
    if not found:
        reject("A protected query must read at least one table associated with the collaboration.")
    if len(found) > request.max_tables:
        reject(f"The query reads {len(found)} configured tables; at most {request.max_tables} are allowed per "
               f"protected query.")
    for name, info in sorted(found.items()):
        if info.unavailable:
            reject(f"Table `{name}` cannot be queried: {info.unavailable}", "INVALID_RESOURCE")
        if info.rule_type is None:
            reject(f"Table `{name}` has no analysis rule, so it cannot be queried.", "INVALID_RESOURCE")
        if info.rule_type not in RULE_TYPES and not id_mapping.is_mapping(info):
            reject(f"Table `{name}` has an analysis rule of type {info.rule_type}, which protected queries do not "
                   f"support.", "INVALID_RESOURCE")
    # ID mapping tables inherit the rule type of the other tables (policy/id_mapping.py)
    ruled = {name: info for name, info in found.items() if not id_mapping.is_mapping(info)}
    if not ruled:
        reject(f"ID mapping table `{sorted(found)[0]}` can be read only joined between tables of the collaboration "
               f"(`a JOIN idmt ON a.id = idmt.sourceid JOIN b ON b.id = idmt.targetid`).")
    kinds = {info.rule_type for info in ruled.values()}
    if len(kinds) > 1:
        listing = ", ".join(f"`{n}` ({ruled[n].rule_type})" for n in sorted(ruled))
        reject(f"All tables of a query must have the same analysis rule type; this query reads {listing}.",
               "INVALID_RESOURCE")
    rule_type = kinds.pop()
    if len(ruled) < len(found):
        found = id_mapping.inherit(found, rule_type)
    names = tuple(sorted(found))
    return Relations(names, found, rule_type)


def schema_of(tables: dict[str, TableInfo]) -> dict[str, dict[str, str]]:
    return {name: {column: (kind or "string") for column, kind in info.columns} for name, info in tables.items()}


def qualify_tree(tree: exp.Expression, tables: dict[str, TableInfo]) -> exp.Expression:
    """Qualify every column with its source's alias (every table gets one), expand `*`, resolve GROUP BY ordinals
    and aliases; refuse unknown or ambiguous columns."""
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier):  # Spark: relation names are case-insensitive, even quoted
            table.set("this", exp.to_identifier(table.name.lower(), quoted=True))
    try:
        return qualify(tree, schema=schema_of(tables), dialect=DIALECT, validate_qualify_columns=True,
                       quote_identifiers=True, identify=True)
    except OptimizeError as error:
        reject(f"{_column_message(clean(str(error)))} A query may use only the allowed columns of the tables it reads.")
    except SqlglotError as error:
        reject(f"The query cannot be analysed: {clean(str(error))}")
    except RecursionError:
        reject("The query is nested too deeply to be analysed.")
    raise AssertionError("unreachable")


def source_tables(scope) -> dict[str, str]:
    """alias -> table name for the base tables selected in one scope."""
    return {alias: node.name for alias, (node, source) in scope.selected_sources.items()
            if isinstance(source, exp.Table)}


def _column_message(text: str) -> str:
    text = text.replace('"', "`").replace("'", "")
    if "could not be resolved" in text or "Unknown column" in text or "Ambiguous" in text:
        return text.split("\n")[0][:250].rstrip(".") + "."
    return f"The query cannot be resolved: {text[:250]}"
