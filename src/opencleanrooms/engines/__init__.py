"""Query engines: run the SQL the policy layer produced over the catalog's files, sandboxed, with limits.

    engine = open_engine("duckdb")
    table = engine.execute(sql, [TableScan("t0", scan, ("user_id", "segment"))], Limits(), CancelToken())

The contract is `engines.base`; every engine passes tests/engines/test_contract.py. This package imports nothing of
the service, HTTP, protocol or storage layers.
"""

from __future__ import annotations

from opencleanrooms.engines.base import (
    INSUFFICIENT_COMPUTE,
    INTERNAL_ERROR,
    INVALID_RESOURCE,
    MALFORMED_QUERY,
    CancelToken,
    Engine,
    EngineError,
    Limits,
    QueryCancelled,
    QueryTimedOut,
    TableScan,
)

ENGINE_NAMES = ("duckdb",)


def open_engine(name: str = "duckdb", **options) -> Engine:
    """An engine by name; `options` go to its constructor. Raises ValueError for an unknown name."""
    if name == "duckdb":
        from opencleanrooms.engines.duckdb import DuckDBEngine

        return DuckDBEngine(**options)
    raise ValueError(f"unknown query engine {name!r} (known: {', '.join(ENGINE_NAMES)})")


__all__ = [
    "ENGINE_NAMES", "INSUFFICIENT_COMPUTE", "INTERNAL_ERROR", "INVALID_RESOURCE", "MALFORMED_QUERY", "CancelToken",
    "Engine", "EngineError", "Limits", "QueryCancelled", "QueryTimedOut", "TableScan", "open_engine",
]
