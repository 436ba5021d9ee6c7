"""Resource quotas, with AWS's published default values; exceeding one is ServiceQuotaExceededException."""

from __future__ import annotations

from dataclasses import dataclass, field

from opencleanrooms.errors import ServiceError

# key -> (quota name as AWS's quota page names it, AWS default value)
DEFAULT_QUOTAS: dict[str, tuple[str, int]] = {
    "collaborations": ("Collaborations created per account", 10),
    "memberships": ("Memberships per account", 100),
    "members": ("Members invited per collaboration", 5),
    "configured_tables": ("Configured tables per account", 250),
    "allowed_columns": ("Columns per configured table allowlist", 100),
    "analysis_templates": ("Analysis templates per membership", 25),
    "id_namespace_associations": ("ID namespace associations per membership", 10),
    "id_mapping_tables": ("ID mapping tables per membership", 5),
    # AWS: 5 in us-east-1 and 2 in other Regions (adjustable); one value here, for every Region served.
    "concurrent_queries": ("Concurrent SQL protected queries per account", 5),
    "concurrent_queries_per_membership": ("Concurrent SQL protected queries per membership", 5),
    # AWS runs one protected job at a time per membership.
    "concurrent_jobs_per_membership": ("Concurrent protected jobs per membership", 1),
}


@dataclass(frozen=True)
class Quotas:
    values: dict[str, int] = field(default_factory=lambda: {k: v for k, (_, v) in DEFAULT_QUOTAS.items()})

    @classmethod
    def with_overrides(cls, overrides: dict[str, int]) -> Quotas:
        unknown = set(overrides) - set(DEFAULT_QUOTAS)
        if unknown:
            raise ValueError(f"unknown quota(s): {', '.join(sorted(unknown))}; known: {', '.join(DEFAULT_QUOTAS)}")
        values = {k: v for k, (_, v) in DEFAULT_QUOTAS.items()}
        values.update(overrides)
        return cls(values)

    def check(self, key: str, would_have: int) -> None:
        """Raise if holding `would_have` of this resource exceeds the quota."""
        limit = self.values[key]
        if would_have > limit:
            name = DEFAULT_QUOTAS[key][0]
            raise ServiceError(
                "ServiceQuotaExceededException",
                f"Request would exceed the service quota '{name}' of {limit}.",
                quotaName=name,
                quotaValue=float(limit),
            )
