"""Budget ledgers as plain values: what is left now, and the new ledger after a spend (or BudgetExhausted).

A differential privacy ledger is the epsilon spent (a Fraction) and the month it was counted in; with
CALENDAR_MONTH refresh a later month starts from nothing. An access budget ledger holds, per budget parameter
type, the number of uses counted and the start of the period they were counted in. The storage layer keeps the
ledgers and calls these inside its write transaction, so that a spend is atomic with the query it pays for.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from opencleanrooms.privacy import costs, periods
from opencleanrooms.privacy.costs import BudgetExhausted

DP_MONTHLY = "CALENDAR_MONTH"

# ------------------------------------------------------------------------------------------------ differential privacy


def dp_spent(spent: Fraction, since: float, auto_refresh: str, now: float) -> Fraction:
    """Epsilon spent in the budget now in force."""
    if auto_refresh == DP_MONTHLY and periods.month_start(now) > since:
        return Fraction(0)
    return spent


def dp_spend(epsilon: int, users_noise_per_query: int, auto_refresh: str, spent: Fraction, since: float,
             aggregations: Mapping[str, int], now: float) -> tuple[Fraction, float, Fraction]:
    """(new spent, new since, price) after paying for `aggregations`; BudgetExhausted when the rest cannot pay."""
    current = dp_spent(spent, since, auto_refresh, now)
    price = costs.query_cost(aggregations, users_noise_per_query)
    if not costs.can_pay(epsilon, current, price):
        left = ", ".join(f"{t} {costs.remaining_count(epsilon, current, users_noise_per_query, t)}"
                         for t, n in aggregations.items() if n)
        asked = ", ".join(f"{n} {t}" for t, n in aggregations.items() if n)
        raise BudgetExhausted(
            f"The collaboration's differential privacy budget cannot pay for this query: it needs {asked}, and the "
            f"remaining budget allows {left}" + (" (of each type alone)" if len(aggregations) > 1 else "") +
            (". The budget refreshes at the start of next month (UTC)." if auto_refresh == DP_MONTHLY else "."))
    if auto_refresh == DP_MONTHLY:
        since = periods.month_start(now) if periods.month_start(now) > since else since
    return current + price, since, price


def dp_refresh_time(auto_refresh: str, now: float) -> float | None:
    """When the budget next refreshes (the next month's start, UTC), or None."""
    return periods.period_end(periods.CALENDAR_MONTH, now) if auto_refresh == DP_MONTHLY else None


# ------------------------------------------------------------------------------------------------ access budgets


def _enabled(parameter: Mapping) -> bool:
    return parameter.get("autoRefresh") == "ENABLED"


def access_remaining(parameter: Mapping, usage: Mapping | None, set_at: float, now: float) -> int:
    """Uses left of one budget parameter at `now`. `usage` is {"spent", "since"} (None: nothing spent since the
    budget was set at `set_at`)."""
    kind, budget = parameter["type"], parameter["budget"]
    since = usage["since"] if usage else _initial_since(kind, set_at)
    spent = usage["spent"] if usage else 0
    if kind == periods.LIFETIME:
        return max(budget - spent, 0)
    if _enabled(parameter):
        return budget if periods.refreshed(kind, True, since, now) else max(budget - spent, 0)
    if now >= periods.period_end(kind, since):  # a period allocation that is not renewed has lapsed
        return 0
    return max(budget - spent, 0)


def access_details(parameters: list[Mapping], usage: Mapping, set_at: float, now: float) -> tuple[list[dict], int]:
    """(AccessBudgetDetails entries, aggregateRemainingBudget: the least remaining of them)."""
    details = []
    for parameter in parameters:
        kind = parameter["type"]
        entry = usage.get(kind)
        since = entry["since"] if entry else _initial_since(kind, set_at)
        start, end = periods.window(kind, _enabled(parameter), since, now)
        detail = {"startTime": start, "remainingBudget": access_remaining(parameter, entry, set_at, now),
                  "budget": parameter["budget"], "budgetType": kind}
        if end is not None:
            detail["endTime"] = end
        if kind != periods.LIFETIME and "autoRefresh" in parameter:
            detail["autoRefresh"] = parameter["autoRefresh"]
        details.append(detail)
    return details, min(d["remainingBudget"] for d in details)


def access_spend(resource: str, parameters: list[Mapping], usage: Mapping, set_at: float, now: float) -> dict:
    """The new usage after one use of the resource; BudgetExhausted when any of its budgets has nothing left."""
    new = {}
    for parameter in parameters:
        kind = parameter["type"]
        entry = usage.get(kind)
        left = access_remaining(parameter, entry, set_at, now)
        if left < 1:
            when = ""
            if kind != periods.LIFETIME and _enabled(parameter):
                when = f"; it refreshes at the start of the next {kind.removeprefix('CALENDAR_').lower()} (UTC)"
            raise BudgetExhausted(f"The access budget of table association {resource} is spent: its {kind} budget "
                                  f"of {parameter['budget']} has no uses left{when}.")
        since = entry["since"] if entry else _initial_since(kind, set_at)
        spent = entry["spent"] if entry else 0
        if kind != periods.LIFETIME and _enabled(parameter) and periods.refreshed(kind, True, since, now):
            since, spent = periods.period_start(kind, now), 0
        new[kind] = {"spent": spent + 1, "since": since}
    return new


def _initial_since(kind: str, set_at: float) -> float:
    """Where counting starts when a budget is set: the period it is set in (lifetime: the moment it is set)."""
    return set_at if kind == periods.LIFETIME else periods.period_start(kind, set_at)
