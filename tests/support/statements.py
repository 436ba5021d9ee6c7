"""Counting the SQL statements a block of code sends: how tests prove a call's cost does not grow with stored data."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa


@contextlib.contextmanager
def counting(statements: list):
    """Every SQL statement any engine of this process sends while the block runs, appended to `statements`."""
    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
