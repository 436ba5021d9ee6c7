"""The cost model: how much epsilon each DP aggregation spends, in exact rational arithmetic.

Every elementary release (one noisy statistic) adds Laplace noise whose scale is `usersNoisePerQuery` (N) times the
release's sensitivity, so each costs exactly epsilon 1/N, the *unit*. An aggregation type costs a whole number of
units (UNITS): the releases it needs, plus one unit for the private estimate of the clamping bounds that every
value-based aggregation needs (the bounds come from the data, so they must be released privately too). Budgets
compose sequentially: a collaboration with budget epsilon can pay for floor(epsilon * N / units) aggregations of one
type. Fractions keep preview and spending identical (no float drift between what is promised and what is spent).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

AGGREGATION_TYPES = ("AVG", "COUNT", "COUNT_DISTINCT", "SUM", "STDDEV")  # the model's enum order

BOUNDS_UNITS = 1  # one noisy histogram of value magnitudes (mechanisms.private_bounds)
UNITS: dict[str, int] = {
    "COUNT_DISTINCT": 1,  # one noisy count of distinct users (sensitivity 1)
    "COUNT": 1,  # one noisy row count (sensitivity: the user contribution limit)
    "SUM": BOUNDS_UNITS + 1,  # the bounds, then one noisy clamped sum
    "AVG": BOUNDS_UNITS + 2,  # the bounds, a noisy sum and a noisy count
    "STDDEV": BOUNDS_UNITS + 3,  # the bounds, a noisy sum, a noisy sum of squares and a noisy count
}


class BudgetExhausted(Exception):
    """A query the remaining budget cannot pay for (or that has no budget to pay from); the message says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def unit_epsilon(users_noise_per_query: int) -> Fraction:
    """Epsilon of one elementary release."""
    if users_noise_per_query <= 0:
        raise ValueError("usersNoisePerQuery must be positive")
    return Fraction(1, users_noise_per_query)


def cost(aggregation_type: str, users_noise_per_query: int) -> Fraction:
    """Epsilon one aggregation of this type spends."""
    return UNITS[aggregation_type] * unit_epsilon(users_noise_per_query)


def query_cost(aggregations: Mapping[str, int], users_noise_per_query: int) -> Fraction:
    """Epsilon a query with these aggregations (type -> how many) spends."""
    total = Fraction(0)
    for aggregation_type, count in aggregations.items():
        if count < 0:
            raise ValueError(f"negative count of {aggregation_type}")
        total += count * cost(aggregation_type, users_noise_per_query)
    return total


def max_count(epsilon: int | Fraction, users_noise_per_query: int, aggregation_type: str) -> int:
    """How many aggregations of one type a budget of `epsilon` pays for (PreviewPrivacyImpact's maxCount)."""
    return remaining_count(epsilon, Fraction(0), users_noise_per_query, aggregation_type)


def remaining_count(epsilon: int | Fraction, spent: Fraction, users_noise_per_query: int,
                    aggregation_type: str) -> int:
    """How many more aggregations of one type the rest of the budget pays for."""
    left = Fraction(epsilon) - spent
    if left <= 0:
        return 0
    return int(left // cost(aggregation_type, users_noise_per_query))


def preview(epsilon: int, users_noise_per_query: int) -> list[dict]:
    """DifferentialPrivacyPreviewAggregation entries, one per type."""
    return [{"type": t, "maxCount": max_count(epsilon, users_noise_per_query, t)} for t in AGGREGATION_TYPES]


def budget_aggregations(epsilon: int, spent: Fraction, users_noise_per_query: int) -> list[dict]:
    """DifferentialPrivacyPrivacyBudgetAggregation entries, one per type."""
    return [{"type": t, "maxCount": max_count(epsilon, users_noise_per_query, t),
             "remainingCount": remaining_count(epsilon, spent, users_noise_per_query, t)} for t in AGGREGATION_TYPES]


def can_pay(epsilon: int, spent: Fraction, price: Fraction) -> bool:
    return spent + price <= Fraction(epsilon)


def encode_fraction(value: Fraction) -> str:
    """Stored form of spent epsilon ("p/q"), exact."""
    return f"{value.numerator}/{value.denominator}"


def decode_fraction(text: str | None) -> Fraction:
    return Fraction(text) if text else Fraction(0)
