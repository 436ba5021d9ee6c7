"""The checks of an analysis template's SQL and parameters, as pure functions over request values.

The SQL is parsed with sqlglot in the Spark dialect (AWS Clean Rooms' current engine is Spark SQL). Its named
parameter markers (`:name`) parse as placeholders, so parameters inside string literals, quoted identifiers and
comments are not parameters, and `a::int` is a cast. Every failure is a ValidationException naming the field at
fault; what each check rests on is listed in docs/behaviour.md under "Analysis templates".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.tokens import TokenType

from opencleanrooms.errors import ServiceError
from opencleanrooms.policy.parameters import PARAMETER_TYPES, value_problem
from opencleanrooms.services import errors

# sqlglot warns when it falls back to parsing a statement it does not know as a command; for a server that is
# user input, answered with a ValidationException, not something to log.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

TEXT_FIELD = "source.text"
PARAMETERS_FIELD = "analysisParameters"
DIALECT = "spark"
# Table-valued functions that make rows without reading data (Spark's generators and range); any other function in
# a FROM clause (read_files, ...) could read data that is not a configured table of the collaboration.
GENERATOR_FUNCTIONS = frozenset({"RANGE", "EXPLODE", "EXPLODE_OUTER", "POSEXPLODE", "POSEXPLODE_OUTER", "INLINE",
                                 "INLINE_OUTER", "STACK"})
# The aggregations Clean Rooms Differential Privacy supports (AVG, COUNT, COUNT DISTINCT, SUM, STDDEV).
DIFFERENTIAL_PRIVACY_AGGREGATES = (exp.Avg, exp.Count, exp.Sum, exp.Stddev, exp.StddevSamp, exp.StddevPop)
_STATEMENTS = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command,
               exp.Cache, exp.Uncache, exp.Use, exp.Set, exp.Into, exp.Describe, exp.Pragma, exp.Transaction,
               exp.Commit, exp.Rollback)
_MAX_MESSAGE = 300

_SQLGLOT_CLASS = re.compile(r"<class 'sqlglot\.[\w.]*?(\w+)'>")
_SENTINEL_TOKEN = re.compile(r"<Token token_type: TokenType\.SENTINEL[^>]*>")
_TOKEN = re.compile(r"<Token token_type: [\w.]+, text: (.*?), line: \d+, col: \d+, start: \d+, end: \d+, "
                    r"comments: \[.*?\]>")


@dataclass(frozen=True)
class Query:
    """A template's SQL, parsed and checked."""

    tree: exp.Expression
    tables: list[str]  # the relations it reads (CTE names excluded): lower case, sorted, unique
    parameters: dict[str, tuple[int, int]]  # name -> (line, column) of its first `:name`


def parse_query(text: str) -> Query:
    """Parse and check an analysis template's SQL: a single query (SELECT, optionally with WITH and set
    operations) whose parameters stand for literal values. Raises ValidationException (`INVALID_QUERY`)."""
    if not text.strip():
        raise _invalid("The analysis template's SQL is empty.")
    try:
        # an empty statement, or only a comment after a semicolon, parses as None or as a bare Semicolon
        statements = [s for s in sqlglot.parse(text, read=DIALECT)
                      if s is not None and not isinstance(s, exp.Semicolon)]
    except ParseError as exc:
        raise _invalid(f"The SQL is not valid: {_parse_error_message(exc)}") from None
    except TokenError as exc:
        raise _invalid(f"The SQL is not valid: unterminated string, quoted identifier or comment "
                       f"({_clean(str(exc))}).") from None
    except RecursionError:
        raise _invalid("The SQL is nested too deeply to be analysed.") from None
    except SqlglotError as exc:
        raise _invalid(f"The SQL is not valid: {_clean(str(exc))}") from None
    if not statements:
        raise _invalid("The analysis template's SQL is empty.")
    if len(statements) > 1:
        raise _invalid(f"The SQL must be a single statement; it has {len(statements)}.")
    tree = statements[0]
    while isinstance(tree, exp.Subquery) and not tree.args.get("alias"):
        tree = tree.this
    if not isinstance(tree, (exp.Select, exp.SetOperation)):
        kind = _statement_kind(tree)
        raise _invalid("The SQL must be a SELECT statement (optionally with WITH)"
                       + (f", not {kind}." if kind else "."))
    try:
        _check_nodes(tree)
        tables = _tables(tree)
        placeholders = list(tree.find_all(exp.Placeholder))
    except RecursionError:
        raise _invalid("The SQL is nested too deeply to be analysed.") from None
    positions = _parameter_positions(text)
    parameters: dict[str, tuple[int, int]] = {}
    for placeholder in placeholders:
        name = placeholder.this
        if not name:
            raise _invalid("Positional parameters (?) are not supported; name parameters with a colon, as in "
                           ":name.")
        if placeholder.find_ancestor(exp.Limit, exp.Offset) is not None:
            clause = "LIMIT" if placeholder.find_ancestor(exp.Limit) is not None else "OFFSET"
            raise _invalid(f"Parameters are not supported in {clause}: :{name}.")
        role = _name_role(placeholder)
        if role:
            raise _invalid(f"Parameters stand for literal values; :{name} is used as {role}.")
        parameters.setdefault(name, positions.get(name, (0, 0)))
    return Query(tree, tables, parameters)


def check_parameters(query: Query, declared: Iterable[dict]) -> None:
    """Every `:name` the SQL uses must be declared in analysisParameters, and every declared parameter used."""
    names = [p["name"] for p in declared]
    undeclared = [name for name in query.parameters if name not in names]
    unused = [name for name in names if name not in query.parameters]
    if not undeclared and not unused:
        return
    messages, fields = [], []
    if undeclared:
        where = ", ".join(f":{name}{_at(query.parameters[name])}" for name in undeclared)
        message = f"Parameters used in the SQL but not declared in analysisParameters: {where}."
        messages.append(message)
        fields.append({"name": TEXT_FIELD, "message": message})
    if unused:
        message = f"Parameters declared in analysisParameters but not used in the SQL: {', '.join(unused)}."
        messages.append(message)
        fields.append({"name": PARAMETERS_FIELD, "message": message})
    raise ServiceError("ValidationException", " ".join(messages), reason="INVALID_CONFIGURATION",
                       fieldList=fields)


def check_parameter_declarations(parameters: list[dict]) -> None:
    """Parameter names appear once, and each default value is a value of the parameter's type."""
    seen: set[str] = set()
    for i, parameter in enumerate(parameters, 1):
        name = parameter["name"]
        if name in seen:
            raise errors.validation(f"The parameter {name} is declared more than once.",
                                    reason="INVALID_CONFIGURATION", field=f"{PARAMETERS_FIELD}.{i}.member.name")
        seen.add(name)
        if "defaultValue" in parameter:
            problem = default_value_problem(parameter["type"], parameter["defaultValue"])
            if problem:
                raise errors.validation(
                    f"The default value of parameter {name} is not a valid {parameter['type']}: {problem}.",
                    reason="INVALID_CONFIGURATION", field=f"{PARAMETERS_FIELD}.{i}.member.defaultValue",
                    field_message=f"Not a valid {parameter['type']}: {problem}")


def default_value_problem(parameter_type: str, value: str) -> str | None:
    """Why `value` cannot be a value of `parameter_type`, or None when it can (policy/parameters.py has the checks,
    shared with the values passed to StartProtectedQuery)."""
    if parameter_type not in PARAMETER_TYPES:
        return None  # the model's enum admits no other type; the protocol layer refuses one before this
    return value_problem(parameter_type, value)


def differential_privacy_problems(query: Query) -> list[str]:
    """What keeps the query from AWS Clean Rooms Differential Privacy's general-purpose query structure, as far as
    it is checked here: the final SELECT must aggregate with a function differential privacy supports."""
    finals = [query.tree] if isinstance(query.tree, exp.Select) else list(_set_operands(query.tree))
    if any(not any(node.find(*DIFFERENTIAL_PRIVACY_AGGREGATES) for node in select.expressions)
           for select in finals):
        return ["The final SELECT must aggregate with at least one of the functions differential privacy "
                "supports: AVG, COUNT, COUNT DISTINCT, SUM, STDDEV."]
    return []


# ------------------------------------------------------------------------------------------------ helpers


def _check_nodes(tree: exp.Expression) -> None:
    """No statement hides inside the query, every SELECT selects something, and no variable or data-reading table
    function is used."""
    for node in tree.walk():
        if isinstance(node, _STATEMENTS):
            raise _invalid(f"The SQL must be a single SELECT statement; it contains {_statement_kind(node)}.")
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Placeholder):
            continue  # a parameter as a table name: refused with the other parameter checks
        if isinstance(node, exp.Select) and not node.expressions:
            raise _invalid("A SELECT must select at least one expression.")
        if isinstance(node, (exp.Parameter, exp.SessionParameter)):
            raise _invalid(f"Variables are not supported: {_clean(node.sql(DIALECT))}. Name parameters with a "
                           f"colon, as in :name.")
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            function = node.this
            name = (function.name if isinstance(function, exp.Anonymous) else function.key).upper()
            if name not in GENERATOR_FUNCTIONS:
                raise _invalid(f"Table-valued functions other than {', '.join(sorted(GENERATOR_FUNCTIONS))} are "
                               f"not supported: {_clean(node.sql(DIALECT))}.")


def _tables(tree: exp.Expression) -> list[str]:
    """The relations the query reads: tables in its scopes that are not CTEs (a CTE's own body may read a table of
    the same name)."""
    names = set()
    for scope in traverse_scope(tree):
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
                names.add(".".join(part for part in (source.catalog, source.db, source.name) if part).lower())
    return sorted(names)


def _name_role(placeholder: exp.Placeholder) -> str | None:
    """Where a parameter stands for a name rather than a value: the part it plays, or None."""
    parent = placeholder.parent
    if isinstance(parent, exp.Table):
        return "a table name"
    if isinstance(parent, exp.TableAlias):
        return "a table alias"
    if placeholder.arg_key == "alias":
        return "an alias"
    if isinstance(parent, exp.Dot) and placeholder.arg_key == "this":
        return "a qualifier"
    return None


def _set_operands(tree: exp.Expression) -> Iterable[exp.Select]:
    for side in (tree.left, tree.right):
        while isinstance(side, exp.Subquery):
            side = side.this
        if isinstance(side, exp.SetOperation):
            yield from _set_operands(side)
        elif isinstance(side, exp.Select):
            yield side


def _parameter_positions(text: str) -> dict[str, tuple[int, int]]:
    """name -> (line, column) of the first `:name`, read from the tokens (so strings and comments are skipped)."""
    try:
        tokens = Spark().tokenize(text)
    except Exception:  # noqa: BLE001  (positions only decorate messages)
        return {}
    positions: dict[str, tuple[int, int]] = {}
    for colon, name in zip(tokens, tokens[1:]):
        if colon.token_type == TokenType.COLON and re.fullmatch(r"\w+", name.text):
            positions.setdefault(name.text, (colon.line, colon.col))
    return positions


def _at(position: tuple[int, int]) -> str:
    line, column = position
    return f" (line {line}, column {column})" if line else ""


def _parse_error_message(exc: ParseError) -> str:
    if not exc.errors:
        return _clean(str(exc))
    first = exc.errors[0]
    description = _clean(first.get("description") or "syntax error")
    highlight = first.get("highlight") or ""
    line, column = first.get("line"), first.get("col")
    where = ""
    if line and column:
        where = f" at line {line}, column {max(1, column - len(highlight) + 1)}"
    near = f" (near {_quote(highlight)})" if highlight.strip() else ""
    return f"{description}{where}{near}."


def _clean(message: str) -> str:
    """A parser message fit for a client: no library internals, no escape codes, not too long."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)
    message = _SENTINEL_TOKEN.sub("the end of the SQL", message)
    message = _TOKEN.sub(lambda m: repr(m[1]), message)
    message = _SQLGLOT_CLASS.sub(lambda m: m[1], message)
    return message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE] + "..."


def _statement_kind(node: exp.Expression) -> str | None:
    """What kind of statement a node is ("DROP"), or None for what is not a statement."""
    if isinstance(node, exp.Into):
        return "SELECT ... INTO"
    if isinstance(node, exp.Command):
        word = str(node.this).upper()
    elif isinstance(node, (*_STATEMENTS, exp.Values)):
        word = node.key.upper()
    else:
        return None
    return word


def _quote(value: str) -> str:
    shown = value if len(value) <= 60 else value[:60] + "..."
    return f"'{shown}'"


def _invalid(message: str) -> ServiceError:
    return errors.validation(message, reason="INVALID_QUERY", field=TEXT_FIELD)

