"""The policy layer's public value types.

They are plain frozen dataclasses so the service, the runner and the engines can build and pass them without
importing anything else of the policy layer (and so a plan can be cached or sent to a worker as is).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_MAX_MESSAGE = 500
# ProtectedQueryError codes the policy layer can produce.
CODES = frozenset({"MALFORMED_QUERY", "RESOURCE_NOT_FOUND", "INVALID_RESOURCE", "RESOURCE_ACCESS_DENIED"})


@dataclass(frozen=True)
class TableInfo:
    """A configured table association as a query sees it: its name, owner, allowed columns and analysis rule."""

    name: str
    owner_account_id: str
    columns: tuple[tuple[str, str], ...]
    rule_type: str | None
    rule: Mapping | None
    unavailable: str | None = None  # why the table cannot be read now (e.g. an expired intermediate table)


@dataclass(frozen=True)
class QueryRequest:
    """One protected query to plan: the SQL, who runs it, and every table associated with the collaboration."""

    sql: str
    runner_account_id: str
    tables: Mapping[str, TableInfo]
    template_arn: str | None = None
    template_author_account_id: str | None = None
    parameters: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    max_tables: int = 15
    # Populating an intermediate table: CUSTOM rules' disallowedOutputColumns are deferred (enforced when the
    # intermediate table is queried), so instead of refusing, the plan records which output columns they reach.
    defer_output_controls: bool = False
    parsed: Any = None  # a ParsedQuery of `sql` the caller already made (to look up its tables): not parsed again


class QueryRejected(Exception):
    """The query may not run. `code` is a ProtectedQueryError code; `message` is safe to show the member."""

    def __init__(self, code: str, message: str):
        if code not in CODES:
            raise ValueError(f"unknown ProtectedQueryError code {code!r}")
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"QueryRejected({self.code!r}, {self.message!r})"


@dataclass(frozen=True)
class Plan:
    """An executable, already-enforced query. The engine registers each table's rows under `scan_names[name]` and
    runs `sql(dialect)`; the result has exactly `output_columns`."""

    rule_type: str
    tables: tuple[str, ...]
    scan_names: Mapping[str, str]
    output_columns: tuple[str, ...]
    tree: Any = field(default=None, repr=False, compare=False)  # the rewritten sqlglot tree (Spark semantics)
    scan_schema: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False, compare=False)
    # internal relation name -> column -> Glue type: what the engine registers, and what transpiling needs to know
    dp_aggregations: tuple[Mapping[str, Any], ...] = ()
    # differential privacy: one entry per output column (output, type, expression, contribution_limit, mode; group
    # keys have mode 'key' and their GROUP BY index); the engine then returns dp.RESULT_COLUMNS cells (and the group
    # keys), not `output_columns`, and the runner releases them with noise
    dp_release: Mapping[str, Any] = field(default_factory=dict)
    # how the runner releases the rows: groups (number of GROUP BY keys), expression and contribution_limit of the
    # key release, order (output index, desc, nulls_first) and limit, both applied to the noisy rows
    dp_wrapper: str = field(default="", repr=False)
    # differential privacy: the rewrite's CTEs and final SELECT (Spark SQL) that continue `tree`, which ends in
    # `SELECT * FROM __dp_rows` (policy/dp.render joins them)
    deferred_columns: tuple[tuple[str, str, str], ...] = ()
    # with QueryRequest.defer_output_controls: (output column, table, column) for each disallowed output column of
    # a table that reaches an output column

    def dp_counts(self) -> dict[str, int]:
        """Aggregations per DP type: what the query spends from the privacy budget. A GROUP BY query also pays one
        COUNT_DISTINCT: the noisy count of users per group that decides which groups are released."""
        counts: dict[str, int] = {}
        for entry in self.dp_aggregations:
            if entry["mode"] != "key":
                counts[entry["type"]] = counts.get(entry["type"], 0) + 1
        if self.dp_release.get("groups"):
            counts["COUNT_DISTINCT"] = counts.get("COUNT_DISTINCT", 0) + 1
        return counts

    def dp_parameters(self) -> list[dict]:
        """ProtectedQuery sensitivityParameters known before the query runs (the runner adds the bounds)."""
        parameters = [{"aggregationType": e["type"], "aggregationExpression": e["expression"],
                       "userContributionLimit": e["contribution_limit"]}
                      for e in self.dp_aggregations if e["mode"] != "key"]
        if self.dp_release.get("groups"):
            parameters.append(key_release_parameter(self.dp_release))
        return parameters

    def sql(self, dialect: str) -> str:
        """The final query in `dialect` ('duckdb' or 'spark')."""
        from opencleanrooms.policy import dp, transpile  # local: keeps this module free of sqlglot

        if self.dp_wrapper:
            return dp.render(self.tree, self.dp_wrapper, dialect, self.scan_schema)
        return transpile.render(self.tree, dialect, self.scan_schema)


def key_release_parameter(release: Mapping[str, Any]) -> dict:
    """The sensitivityParameters entry of a GROUP BY query's key release (a COUNT_DISTINCT of users per group)."""
    return {"aggregationType": "COUNT_DISTINCT", "aggregationExpression": release["expression"],
            "userContributionLimit": release["contribution_limit"]}
