"""The checks of analysis templates' SQL and parameters, as pure functions (no server, no database)."""

from __future__ import annotations

import pytest

from opencleanrooms.errors import ServiceError
from opencleanrooms.services.sql_templates import (
    check_parameter_declarations,
    check_parameters,
    default_value_problem,
    differential_privacy_problems,
    parse_query,
)

pytestmark = pytest.mark.backend_independent


def refused(text: str) -> ServiceError:
    """parse_query(text) must fail on source.text with INVALID_QUERY; returns the error."""
    with pytest.raises(ServiceError) as info:
        parse_query(text)
    error = info.value
    assert error.code == "ValidationException"
    assert error.fields["reason"] == "INVALID_QUERY"
    assert [f["name"] for f in error.fields["fieldList"]] == ["source.text"]
    for internal in ("sqlglot", "<class", "Token", "Traceback", "\x1b"):
        assert internal not in error.message, error.message
    return error


# ------------------------------------------------------------------------------------------------ tables


@pytest.mark.parametrize(("text", "tables"), [
    ("SELECT user_id FROM customers", ["customers"]),
    ("SELECT c.user_id FROM Customers c JOIN IMPRESSIONS i ON c.user_id = i.user_id", ["customers", "impressions"]),
    # CTE names are not tables; a CTE's own body may read a table of the same name
    ("WITH c AS (SELECT * FROM customers) SELECT count(*) FROM c", ["customers"]),
    ("WITH customers AS (SELECT * FROM customers WHERE age_band = 'x') SELECT count(*) FROM customers",
     ["customers"]),
    ("WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a) SELECT * FROM b", []),
    # subqueries, set operations, EXISTS and scalar subqueries
    ("SELECT * FROM (SELECT * FROM t1) s WHERE x IN (SELECT y FROM t2) AND EXISTS (SELECT 1 FROM t3)",
     ["t1", "t2", "t3"]),
    ("SELECT a FROM t1 UNION ALL SELECT a FROM t2 UNION SELECT a FROM t1", ["t1", "t2"]),
    ("(SELECT (SELECT max(x) FROM t2) FROM t1)", ["t1", "t2"]),
    # quoted names keep their spaces and hyphens; qualified names are kept whole
    ("SELECT * FROM `Customer Data-2024`", ["customer data-2024"]),
    ("SELECT * FROM sales.orders", ["sales.orders"]),
    # generators read no table
    ("SELECT * FROM t LATERAL VIEW explode(arr) e AS x", ["t"]),
    ("SELECT * FROM range(10)", []),
])
def test_tables_read_are_derived_sorted_lower_case_and_unique(text, tables):
    assert parse_query(text).tables == tables


# ------------------------------------------------------------------------------------------------ parameters


def test_parameters_are_named_markers_outside_strings_and_comments():
    query = parse_query("SELECT a FROM t -- :in_comment\n"
                        "WHERE b = ':in_string' AND c = `:quoted` AND d = e::int /* :block */\n"
                        "  AND f > :low AND g < : high AND h IN (:low, :other)")
    assert query.parameters == {"low": (3, 11), "high": (3, 24), "other": (3, 47)}


def test_the_documented_example_parses():
    assert parse_query("SELECT COUNT(*) FROM table1 WHERE table1.date + :date_period > table1.date").parameters \
        == {"date_period": (1, 49)}


@pytest.mark.parametrize(("text", "expected"), [
    ("SELECT a FROM t LIMIT :n", "not supported in LIMIT: :n"),
    ("SELECT a FROM t WHERE b IN (SELECT c FROM u LIMIT :n)", "not supported in LIMIT: :n"),
    ("SELECT a FROM t LIMIT 5 OFFSET :n", "not supported in OFFSET: :n"),
    ("SELECT * FROM :t", ":t is used as a table name"),
    ("SELECT * FROM t AS :x", ":x is used as a table alias"),
    ("SELECT a AS :x FROM t", ":x is used as an alias"),
    ("SELECT raw:field FROM t", ":field is used as an alias"),
    ("SELECT :x.y FROM t", ":x is used as a qualifier"),
    ("SELECT a FROM t WHERE b = ?", "Positional parameters (?) are not supported"),
    ("SELECT ${x} FROM t", "Variables are not supported"),
])
def test_parameters_stand_for_literal_values_outside_limit(text, expected):
    assert expected in refused(text).message


def test_a_limit_without_parameters_is_fine():
    assert parse_query("SELECT a FROM t WHERE b = :p ORDER BY a LIMIT 10").parameters == {"p": (1, 27)}


def _mismatch(query, declared):
    with pytest.raises(ServiceError) as info:
        check_parameters(query, [{"name": n, "type": "STRING"} for n in declared])
    assert info.value.fields["reason"] == "INVALID_CONFIGURATION"
    return info.value


def test_used_parameters_must_be_declared_and_declared_ones_used():
    query = parse_query("SELECT a FROM t WHERE b = :b\n AND c = :c AND d = :b")
    check_parameters(query, [{"name": "c", "type": "STRING"}, {"name": "b", "type": "INTEGER"}])
    error = _mismatch(query, ["b"])
    assert error.message == "Parameters used in the SQL but not declared in analysisParameters: :c (line 2, column 10)."
    assert [f["name"] for f in error.fields["fieldList"]] == ["source.text"]
    error = _mismatch(query, ["b", "c", "unused", "B"])  # names are case-sensitive
    assert error.message == "Parameters declared in analysisParameters but not used in the SQL: unused, B."
    assert [f["name"] for f in error.fields["fieldList"]] == ["analysisParameters"]
    error = _mismatch(query, ["c", "x"])
    assert [f["name"] for f in error.fields["fieldList"]] == ["source.text", "analysisParameters"]
    assert ":b (line 1, column 27)" in error.message and "not used in the SQL: x." in error.message


def test_parameter_names_appear_once():
    with pytest.raises(ServiceError) as info:
        check_parameter_declarations([{"name": "p", "type": "INT"}, {"name": "q", "type": "INT"},
                                      {"name": "p", "type": "STRING"}])
    assert info.value.fields["fieldList"][0]["name"] == "analysisParameters.3.member.name"


VALID_DEFAULTS = {
    "TINYINT": ["-128", "127", "+5"], "BYTE": ["0"], "SMALLINT": ["-32768", "32767"], "SHORT": ["12"],
    "INTEGER": ["2147483647", "-2147483648", "007"], "INT": ["1"], "BIGINT": ["9223372036854775807"],
    "LONG": ["-9223372036854775808"],
    "DECIMAL": ["1.50", "-0.5", ".5", "3.", "1" * 38], "NUMERIC": ["42"],
    "REAL": ["1.5e10", "-3.4e38"], "FLOAT": ["0.1"], "DOUBLE": ["1e308", "-2.5"], "DOUBLE_PRECISION": ["7"],
    "BOOLEAN": ["true", "FALSE", "True"],
    "CHAR": ["x"], "CHARACTER": ["abc"], "VARCHAR": ["any text at all"], "STRING": [" "],
    "VARBYTE": ["0a1b"], "BINARY": ["bytes"],
    "DATE": ["2024-02-29"],
    "TIMESTAMP": ["2024-01-31 23:59:59", "2024-01-31T00:00", "2024-01-31", "2024-01-31 10:00:00.123456+02:00"],
    "TIMESTAMP_NTZ": ["2024-01-31 23:59:59.5"],
    "TIMESTAMPTZ": ["2024-01-31 23:59:59Z", "2024-01-31 23:59:59-0530"], "TIMESTAMP_LTZ": ["2024-01-31 01:02:03+01"],
    "TIME": ["23:59:59", "00:00", "12:30:00.25"], "TIMETZ": ["12:30:00+02:00", "12:30Z"],
}
INVALID_DEFAULTS = {
    "TINYINT": ["128", "-129", "1.0"], "BYTE": ["x"], "SMALLINT": ["32768"], "SHORT": ["-32769"],
    "INTEGER": ["abc", "2147483648", "1e3", " 1", "\u0661\u0662"], "INT": ["1.5"], "BIGINT": ["9223372036854775808"],
    "LONG": ["0x10"],
    "DECIMAL": ["1e5", "abc", "1" * 39, "1.2.3"], "NUMERIC": ["NaN"],
    "REAL": ["3.5e38", "abc"], "FLOAT": ["inf"], "DOUBLE": ["1e309", "NaN"], "DOUBLE_PRECISION": ["one"],
    "BOOLEAN": ["yes", "1", "t"],
    "DATE": ["\u0662024-01-01", "2023-02-29", "2024-13-01", "31/01/2024", "2024-01-31 10:00"],
    "TIMESTAMP": ["2024-01-31 24:00:00", "yesterday", "2024-01-31 10:61"],
    "TIMESTAMP_NTZ": ["2024-01-31 10:00:00+02:00"],
    "TIMESTAMPTZ": ["2024-01-31 10:00:00+25:00"], "TIMESTAMP_LTZ": ["2024-02-30 10:00"],
    "TIME": ["24:00", "12:30:00+02:00", "noon"], "TIMETZ": ["12:60"],
    "STRING": [""], "VARCHAR": [""], "BINARY": [""],
}


@pytest.mark.parametrize(("parameter_type", "value"),
                         [(t, v) for t, values in VALID_DEFAULTS.items() for v in values])
def test_default_values_of_each_type_family(parameter_type, value):
    assert default_value_problem(parameter_type, value) is None


@pytest.mark.parametrize(("parameter_type", "value"),
                         [(t, v) for t, values in INVALID_DEFAULTS.items() for v in values])
def test_default_values_that_are_not_of_the_type(parameter_type, value):
    assert default_value_problem(parameter_type, value)


def test_every_parameter_type_is_covered():
    from opencleanrooms.protocol.model import load_service_model

    types = set(load_service_model().shape_for("ParameterType").enum)
    assert set(VALID_DEFAULTS) == types
    assert {t for t in types if default_value_problem(t, "not a number, date or boolean!")} == \
        types - {"CHAR", "CHARACTER", "VARCHAR", "STRING", "VARBYTE", "BINARY"}


def test_a_bad_default_names_the_parameter_and_field():
    with pytest.raises(ServiceError) as info:
        check_parameter_declarations([{"name": "ok", "type": "STRING", "defaultValue": "x"},
                                      {"name": "n", "type": "INTEGER", "defaultValue": "abc"}])
    assert info.value.message == "The default value of parameter n is not a valid INTEGER: 'abc' is not a whole number."
    assert info.value.fields["fieldList"][0]["name"] == "analysisParameters.2.member.defaultValue"
    check_parameter_declarations([{"name": "n", "type": "INTEGER"}])  # no default: nothing to check


# ------------------------------------------------------------------------------------------------ statements


@pytest.mark.parametrize(("text", "expected"), [
    ("", "empty"),
    ("  ;  -- nothing\n", "empty"),
    ("SELECT 1; SELECT 2", "single statement; it has 2"),
    ("SELECT a FROM t; DROP TABLE t", "single statement; it has 2"),
    ("INSERT INTO t SELECT 1", "WITH), not INSERT."),
    ("DROP TABLE t", "WITH), not DROP."),
    ("DELETE FROM t", "WITH), not DELETE."),
    ("CREATE TABLE x AS SELECT * FROM t", "WITH), not CREATE."),
    ("SHOW TABLES", "WITH), not SHOW."),
    ("EXPLAIN SELECT 1", "WITH), not EXPLAIN."),
    ("VALUES (1)", "WITH), not VALUES."),
    ("SET x = 1", "WITH), not SET."),
    ("USE db", "WITH), not USE."),
    ("CACHE TABLE t", "WITH), not CACHE."),
    ("SELEC a", "must be a SELECT statement (optionally with WITH)."),
    ("SELECT a INTO b FROM t", "SELECT ... INTO"),
    ("SELECT FROM t", "at least one expression"),
    ("SELECT * FROM read_files('s3://bucket/x')", "Table-valued functions"),
    ("SELECT " + "(" * 3000 + "1" + ")" * 3000, "nested too deeply"),
])
def test_only_a_single_select_is_accepted(text, expected):
    assert expected in refused(text).message


@pytest.mark.parametrize(("text", "expected"), [
    ("SELEC a FROM t",
     "The SQL is not valid: Invalid expression / Unexpected token at line 1, column 9 (near 'FROM')."),
    ("SELECT a\nFROM t\nWHERE", "at line 3, column 1 (near 'WHERE')"),
    ("SELECT * FROM", "Expected table name but got the end of the SQL"),
    ("SELECT count(* FROM t", "Expecting )"),
    ("SELECT 'abc FROM t", "unterminated string, quoted identifier or comment"),
    ("SELECT a /* open FROM t", "unterminated string, quoted identifier or comment"),
])
def test_invalid_sql_gets_the_parsers_message(text, expected):
    assert expected in refused(text).message


def test_a_trailing_semicolon_and_set_operations_are_fine():
    assert parse_query("SELECT a FROM t;").tables == ["t"]
    assert parse_query("SELECT a FROM t; -- done\n").tables == ["t"]
    assert parse_query("WITH x AS (SELECT a FROM t) SELECT a FROM x INTERSECT SELECT a FROM u").tables == ["t", "u"]


# ------------------------------------------------------------------------------------------------ DP structure


@pytest.mark.parametrize(("text", "problems"), [
    ("SELECT segment, COUNT(DISTINCT user_id) FROM t GROUP BY segment", 0),
    ("WITH u AS (SELECT user_id, sum(x) AS s FROM t GROUP BY user_id) SELECT AVG(s) FROM u", 0),
    ("SELECT STDDEV(x), SUM(y) FROM t", 0),
    ("SELECT user_id FROM t", 1),
    ("SELECT max(x) FROM t", 1),  # not an aggregation differential privacy supports
    ("SELECT count(*) FROM t UNION ALL SELECT x FROM u", 1),
])
def test_differential_privacy_needs_a_supported_aggregation_in_the_final_select(text, problems):
    assert len(differential_privacy_problems(parse_query(text))) == problems
