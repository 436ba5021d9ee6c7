"""Keyset pages: `WHERE seq < :after ORDER BY seq DESC LIMIT n+1` on an index, so a page costs the same at any depth.

Page queries run on every list call, so each is built once per shape (which filters are set, first page or not)
and then only executed with new parameter values. `fetch_tuples` goes further for the hottest pages: it compiles
the statement once for the connection's dialect and runs it on the driver's cursor, skipping SQLAlchemy's
per-execution work; it suits columns that need no type processing (integers, text).
"""

from __future__ import annotations

import sqlalchemy as sa


class KeysetQuery:
    def __init__(self, select: sa.Select, seq: sa.ColumnElement, filters: dict[str, sa.ColumnElement],
                 *, ascending: bool = False) -> None:
        self._select = select
        self._seq = seq
        self._filters = filters  # parameter name -> column compared for equality when the parameter is given
        self._ascending = ascending
        self._prepared: dict[tuple, sa.Select] = {}
        self._compiled: dict[tuple, tuple] = {}

    def fetch(self, conn: sa.Connection, after: int | None, limit: int, **values):
        """(rows, last_seq); last_seq is set only when more rows follow. Filters whose value is None are unset."""
        given = tuple(name for name in self._filters if values.get(name) is not None)
        key = (given, after is not None)
        query = self._prepared.get(key)
        if query is None:
            query = self._prepared[key] = self._prepare(given, after is not None)
        params = {name: values[name] for name in given}
        params.update(after=after, limit=limit + 1)
        rows = conn.execute(query, params).all()
        if len(rows) > limit:
            rows = rows[:limit]
            return rows, rows[-1].seq
        return rows, None

    def fetch_tuples(self, conn: sa.Connection, after: int | None, limit: int, **values):
        """Like `fetch`, but rows are plain driver tuples (seq first)."""
        given = tuple(name for name in self._filters if values.get(name) is not None)
        key = (given, after is not None, conn.dialect.name)
        compiled = self._compiled.get(key)
        if compiled is None:
            statement = self._prepare(given, after is not None).compile(dialect=conn.dialect)
            compiled = self._compiled[key] = (str(statement), statement.params,  # the dialect's own binds too
                                              statement.positiontup if statement.positional else None)
        sql, defaults, order = compiled
        params = dict(defaults)
        params.update({name: values[name] for name in given}, after=after, limit=limit + 1)
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.execute(sql, tuple(params[name] for name in order) if order is not None else params)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if len(rows) > limit:
            rows = rows[:limit]
            return rows, rows[-1][0]
        return rows, None

    def _prepare(self, given: tuple[str, ...], resumed: bool) -> sa.Select:
        query = self._select.where(*(self._filters[name] == sa.bindparam(name) for name in given))
        if resumed:
            after = sa.bindparam("after")
            query = query.where(self._seq > after if self._ascending else self._seq < after)
        order = self._seq.asc() if self._ascending else self._seq.desc()
        return query.order_by(order).limit(sa.bindparam("limit"))
