"""Redaction of what a query log may carry out of the collaboration: the data values a member wrote into SQL and the
values an engine quotes in its error messages. Pure (sqlglot only), so it is tested without a server."""

from __future__ import annotations

import re

from sqlglot import exp

from opencleanrooms.policy.parse import DIALECT, parse
from opencleanrooms.policy.model import QueryRejected

REDACTED = "<redacted>"
UNREADABLE = "<query text withheld: it could not be parsed for redaction>"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LONG_NUMBER = re.compile(r"(?<![\w.])\d[\d.,eE+-]*")


def redact_sql(sql: str) -> str:
    """The query with every literal (string, number, date) replaced by `?`; its shape (relations, columns,
    functions, clauses) kept. Text that does not parse is withheld whole rather than shown unredacted."""
    try:
        tree = parse(sql)
    except (QueryRejected, RecursionError):
        return UNREADABLE
    tree = tree.transform(lambda node: exp.Placeholder() if isinstance(node, exp.Literal) else node)
    try:
        return tree.sql(DIALECT)
    except Exception:  # noqa: BLE001  (sqlglot cannot print what it parsed: withhold it)
        return UNREADABLE


def redact_message(message: str) -> str:
    """An engine's error message with quoted values and numbers replaced, since they may be data values."""
    return _LONG_NUMBER.sub(REDACTED, _QUOTED.sub(REDACTED, message))
