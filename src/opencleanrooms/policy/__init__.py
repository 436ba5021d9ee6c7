"""The pure SQL policy layer for protected queries: a member's Spark SQL plus the referenced tables' analysis
rules in, a refusal (QueryRejected) or an executable Plan out. No I/O, no storage, no HTTP: the service and the
runner call plan_query; the engine runs Plan.sql(dialect) over tables registered under Plan.scan_names."""

from opencleanrooms.policy.model import Plan, QueryRejected, QueryRequest, TableInfo
from opencleanrooms.policy.plan import plan_query, warm_up
from opencleanrooms.policy.resolve import ParsedQuery

__all__ = ["TableInfo", "QueryRequest", "Plan", "ParsedQuery", "QueryRejected", "plan_query", "warm_up"]
