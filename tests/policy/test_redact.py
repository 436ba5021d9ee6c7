"""What an exported query log may carry: the query's shape without its values, engine messages without values."""

from __future__ import annotations

import pytest

from opencleanrooms.policy.redact import REDACTED, UNREADABLE, redact_message, redact_sql


@pytest.mark.parametrize("sql,expected", [
    ("SELECT segment, COUNT(*) FROM customers WHERE email = 'a@b.c' AND age > 30 GROUP BY segment",
     "SELECT segment, COUNT(*) FROM customers WHERE email = ? AND age > ? GROUP BY segment"),
    ("SELECT SUM(x) FROM t WHERE d >= DATE '2024-01-01' AND y IN (1.5, -2, 'z') LIMIT 10",
     "SELECT SUM(x) FROM t WHERE d >= CAST(? AS DATE) AND y IN (?, -?, ?) LIMIT ?"),
    ("SELECT `my table`.a FROM `my table` WHERE a LIKE '%secret%'",
     "SELECT `my table`.a FROM `my table` WHERE a LIKE ?"),
])
def test_literals_leave_the_sql_and_its_shape_stays(sql, expected):
    assert redact_sql(sql) == expected


@pytest.mark.parametrize("sql", ["SELECT 'unterminated", "DROP TABLE x; SELECT 1", "", "SELECT ( FROM"])
def test_text_that_cannot_be_parsed_is_withheld_whole(sql):
    assert redact_sql(sql) == UNREADABLE


def test_engine_messages_lose_quoted_values_and_numbers():
    message = 'Conversion Error: Could not convert string \'alice@example.com\' to INT32 at row 1234 ("x y")'
    redacted = redact_message(message)
    assert "alice@example.com" not in redacted and "1234" not in redacted and "x y" not in redacted
    assert redacted == f"Conversion Error: Could not convert string {REDACTED} to INT32 at row {REDACTED} ({REDACTED})"


def test_template_parameters_are_names_and_stay():
    assert redact_sql("SELECT COUNT(*) FROM t WHERE seg = :segment AND x > 5") == \
        "SELECT COUNT(*) FROM t WHERE seg = :segment AND x > ?"
