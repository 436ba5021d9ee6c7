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
    EngineUnavailable,
    Limits,
    QueryCancelled,
    QueryTimedOut,
    TableScan,
)

ENGINE_NAMES = ("duckdb", "spark")


def open_engine(name: str = "duckdb", **options) -> Engine:
    """An engine by name; `options` go to its constructor (Spark: `remote="sc://HOST:PORT"`). Raises ValueError
    for an unknown name, EngineUnavailable when the engine's package is not installed."""
    if name == "duckdb":
        from opencleanrooms.engines.duckdb import DuckDBEngine

        return DuckDBEngine(**options)
    if name == "spark":
        from opencleanrooms.engines.spark import SparkEngine

        return SparkEngine(**options)
    raise ValueError(f"unknown query engine {name!r} (known: {', '.join(ENGINE_NAMES)})")


__all__ = [
    "ENGINE_NAMES", "INSUFFICIENT_COMPUTE", "INTERNAL_ERROR", "INVALID_RESOURCE", "MALFORMED_QUERY", "CancelToken",
    "Engine", "EngineError", "EngineUnavailable", "Limits", "QueryCancelled", "QueryTimedOut", "TableScan",
    "open_engine",
]
