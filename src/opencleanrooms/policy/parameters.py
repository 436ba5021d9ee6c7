"""Analysis-template parameter values: whether a value is a value of its declared ParameterType, and the typed
sqlglot literal that stands for it in the query tree.

Values are bound as literal nodes, never pasted into the SQL text, so a hostile value such as `x' OR '1'='1` stays
one string literal whatever it contains. The same type checks serve CreateAnalysisTemplate (default values, through
services/sql_templates.py) and StartProtectedQuery (the values a member passes).
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Mapping

from sqlglot import exp

# ParameterType -> family. Spark's names and Clean Rooms SQL's (Redshift-style) names share a family when they
# mean the same kind of value.
INTEGER_BITS = {
    "TINYINT": 8, "BYTE": 8, "SMALLINT": 16, "SHORT": 16, "INTEGER": 32, "INT": 32, "BIGINT": 64, "LONG": 64,
}
EXACT_NUMERIC = frozenset({"DECIMAL", "NUMERIC"})
FLOAT_LIMITS = {"REAL": 3.4028234663852886e38, "FLOAT": 3.4028234663852886e38,
                "DOUBLE": 1.7976931348623157e308, "DOUBLE_PRECISION": 1.7976931348623157e308}
STRINGS = frozenset({"CHAR", "CHARACTER", "VARCHAR", "STRING"})
BINARIES = frozenset({"VARBYTE", "BINARY"})
TIMESTAMPS_WITHOUT_ZONE = frozenset({"TIMESTAMP_NTZ"})
TIMESTAMPS = frozenset({"TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP_LTZ", "TIMESTAMP_NTZ"})
TIMES = frozenset({"TIME", "TIMETZ"})
MAX_DECIMAL_DIGITS = 38  # Spark's (and Redshift's) largest decimal precision
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[ T]([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?))?"
                        r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?")
_TIME = re.compile(r"([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?")


def value_problem(parameter_type: str, value: str) -> str | None:
    """Why `value` cannot be a value of `parameter_type`, or None when it can."""
    if value == "":
        return "empty values are not supported"
    if parameter_type in INTEGER_BITS:
        if not _INTEGER.fullmatch(value):
            return f"{_quote(value)} is not a whole number"
        bits = INTEGER_BITS[parameter_type]
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return None if low <= int(value) <= high else f"{_quote(value)} is outside {low}..{high}"
    if parameter_type in EXACT_NUMERIC:
        if not _DECIMAL.fullmatch(value):
            return f"{_quote(value)} is not a decimal number"
        digits = len(value.lstrip("+-").replace(".", "").lstrip("0"))
        return (None if digits <= MAX_DECIMAL_DIGITS
                else f"{_quote(value)} has more than {MAX_DECIMAL_DIGITS} digits")
    if parameter_type in FLOAT_LIMITS:
        if not _FLOAT.fullmatch(value):
            return f"{_quote(value)} is not a number"
        return None if abs(float(value)) <= FLOAT_LIMITS[parameter_type] else f"{_quote(value)} is out of range"
    if parameter_type == "BOOLEAN":
        return None if value.lower() in ("true", "false") else f"{_quote(value)} is not true or false"
    if parameter_type == "DATE":
        if not _DATE.fullmatch(value):
            return f"{_quote(value)} is not a date (YYYY-MM-DD)"
        return _date_problem(value)
    if parameter_type in TIMESTAMPS:
        match = _TIMESTAMP.fullmatch(value)
        if not match:
            return f"{_quote(value)} is not a timestamp (YYYY-MM-DD HH:MM:SS[.fff][zone])"
        if match[3] and parameter_type in TIMESTAMPS_WITHOUT_ZONE:
            return f"{_quote(value)} has a time zone, which {parameter_type} values do not"
        return _date_problem(match[1]) or (_time_problem(match[2]) if match[2] else None) or _zone_problem(match[3])
    if parameter_type in TIMES:
        match = _TIME.fullmatch(value)
        if not match:
            return f"{_quote(value)} is not a time (HH:MM:SS[.fff])"
        if match[2] and parameter_type == "TIME":
            return f"{_quote(value)} has a time zone, which TIME values do not"
        return _time_problem(match[1]) or _zone_problem(match[2])
    if parameter_type in STRINGS or parameter_type in BINARIES:  # any text converts to bytes
        return None
    return f"{parameter_type} is not a parameter type"


def literal(parameter_type: str, value: str) -> exp.Expression:
    """The typed literal for a value already accepted by value_problem. Numbers are normalised (`+007` -> 7);
    dates and timestamps become typed literals (`DATE '2024-01-31'`); text stays one string literal."""
    if parameter_type in INTEGER_BITS:
        return _number(str(int(value)))
    if parameter_type in EXACT_NUMERIC:
        return _number(str(decimal.Decimal(value)))
    if parameter_type in FLOAT_LIMITS:
        return exp.cast(_number(repr(float(value))), "DOUBLE")
    if parameter_type == "BOOLEAN":
        return exp.Boolean(this=value.lower() == "true")
    if parameter_type == "DATE":
        return exp.cast(exp.Literal.string(value), "DATE")
    if parameter_type in TIMESTAMPS:
        target = "TIMESTAMP" if parameter_type in ("TIMESTAMP_NTZ",) or not _TIMESTAMP.fullmatch(value)[3] \
            else "TIMESTAMPTZ"
        return exp.cast(exp.Literal.string(value.replace("T", " ", 1)), target)
    return exp.Literal.string(value)  # strings, binaries and times (Spark has no TIME type)


def bind(tree: exp.Expression, values: Mapping[str, tuple[str, str]], reject) -> exp.Expression:
    """Replace every `:name` placeholder by its typed literal. `reject(message)` is called (and must raise) for a
    placeholder with no value, a positional `?`, a placeholder in LIMIT/OFFSET or standing for a name, and a value
    that is not of its declared type."""
    for placeholder in list(tree.find_all(exp.Placeholder)):
        name = placeholder.this
        if not name:
            reject("Positional parameters (?) are not supported; name parameters with a colon, as in :name.")
        if placeholder.find_ancestor(exp.Limit, exp.Offset, exp.Fetch) is not None:
            reject(f"Parameters are not supported in LIMIT or OFFSET: :{name}.")
        parent = placeholder.parent
        if isinstance(parent, (exp.Table, exp.TableAlias)) or placeholder.arg_key == "alias" or (
                isinstance(parent, exp.Dot) and placeholder.arg_key == "this"):
            reject(f"Parameters stand for literal values, not names: :{name}.")
        if name not in values:
            reject(f"Parameter :{name} has no value: pass one, or declare a default value in the template.")
        parameter_type, value = values[name]
        problem = value_problem(parameter_type, value)
        if problem:
            reject(f"The value of parameter :{name} is not a valid {parameter_type}: {problem}.")
        node = literal(parameter_type, value)
        if placeholder is tree:
            return node
        placeholder.replace(node)
    return tree


def _number(text: str) -> exp.Expression:
    if text.startswith("-"):
        return exp.Neg(this=exp.Literal.number(text[1:]))
    return exp.Literal.number(text)


def _date_problem(value: str) -> str | None:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return f"{_quote(value)} is not a calendar date"
    return None


def _time_problem(value: str) -> str | None:
    hours, minutes, *rest = value.split(":")
    seconds = float(rest[0]) if rest else 0.0
    if int(hours) > 23 or int(minutes) > 59 or seconds >= 60:
        return f"{_quote(value)} is not a time of day"
    return None


def _zone_problem(zone: str | None) -> str | None:
    if not zone or zone == "Z":
        return None
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 18 or minutes > 59:
        return f"{_quote(zone)} is not a time zone offset"
    return None


def _quote(value: str) -> str:
    shown = value if len(value) <= 60 else value[:60] + "..."
    return f"'{shown}'"


PARAMETER_TYPES = frozenset({*INTEGER_BITS, *EXACT_NUMERIC, *FLOAT_LIMITS, "BOOLEAN", "DATE", *TIMESTAMPS, *TIMES,
                             *STRINGS, *BINARIES})
