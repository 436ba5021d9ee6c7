"""Calendar periods and the budget ledgers: refresh by the calendar (UTC), exhaustion, access budget windows."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest

from opencleanrooms.privacy import budgets, periods
from opencleanrooms.privacy.costs import BudgetExhausted


def ts(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_periods_follow_the_utc_calendar():
    t = ts(2024, 2, 29, 23, 59, 59)  # a Thursday in a leap February
    assert periods.period_start("CALENDAR_DAY", t) == ts(2024, 2, 29)
    assert periods.period_end("CALENDAR_DAY", t) == ts(2024, 3, 1)
    assert periods.period_start("CALENDAR_WEEK", t) == ts(2024, 2, 26)  # Monday
    assert periods.period_end("CALENDAR_WEEK", t) == ts(2024, 3, 4)
    assert periods.period_start("CALENDAR_MONTH", t) == ts(2024, 2, 1)
    assert periods.period_end("CALENDAR_MONTH", t) == ts(2024, 3, 1)
    assert periods.period_end("CALENDAR_MONTH", ts(2024, 12, 31, 12)) == ts(2025, 1, 1)
    with pytest.raises(ValueError):
        periods.period_start("LIFETIME", t)


def test_dp_ledger_refreshes_at_the_month_boundary_only_when_asked():
    since = periods.month_start(ts(2024, 1, 10))
    spent = Fraction(2)
    assert budgets.dp_spent(spent, since, "CALENDAR_MONTH", ts(2024, 1, 31, 23, 59, 59)) == 2
    assert budgets.dp_spent(spent, since, "CALENDAR_MONTH", ts(2024, 2, 1)) == 0
    assert budgets.dp_spent(spent, since, "NONE", ts(2030, 1, 1)) == 2
    assert budgets.dp_refresh_time("CALENDAR_MONTH", ts(2024, 1, 10)) == ts(2024, 2, 1)
    assert budgets.dp_refresh_time("NONE", ts(2024, 1, 10)) is None


def test_dp_spend_pays_exactly_and_refuses_past_the_budget():
    now = ts(2024, 5, 3)
    spent, since = Fraction(0), periods.month_start(now)
    for _ in range(10):  # epsilon 1, noise 10: ten COUNTs
        spent, since, price = budgets.dp_spend(1, 10, "CALENDAR_MONTH", spent, since, {"COUNT": 1}, now)
        assert price == Fraction(1, 10)
    assert spent == 1
    with pytest.raises(BudgetExhausted) as caught:
        budgets.dp_spend(1, 10, "CALENDAR_MONTH", spent, since, {"COUNT": 1}, now)
    assert "1 COUNT" in caught.value.message and "next month" in caught.value.message
    spent, since, _ = budgets.dp_spend(1, 10, "CALENDAR_MONTH", spent, since, {"COUNT": 1}, ts(2024, 6, 1))
    assert (spent, since) == (Fraction(1, 10), ts(2024, 6, 1))
    with pytest.raises(BudgetExhausted):
        budgets.dp_spend(1, 10, "NONE", Fraction(1), since, {"COUNT": 1}, ts(2099, 1, 1))


def test_access_budget_daily_refresh_and_lifetime():
    set_at = ts(2024, 5, 3, 10)
    parameters = [{"type": "CALENDAR_DAY", "budget": 2, "autoRefresh": "ENABLED"}, {"type": "LIFETIME", "budget": 3}]
    usage: dict = {}
    for hour in (11, 12):
        usage = budgets.access_spend("t", parameters, usage, set_at, ts(2024, 5, 3, hour))
    details, aggregate = budgets.access_details(parameters, usage, set_at, ts(2024, 5, 3, 13))
    assert aggregate == 0
    assert details[0] == {"startTime": ts(2024, 5, 3), "endTime": ts(2024, 5, 4), "remainingBudget": 0,
                          "budget": 2, "budgetType": "CALENDAR_DAY", "autoRefresh": "ENABLED"}
    assert details[1] == {"startTime": set_at, "remainingBudget": 1, "budget": 3, "budgetType": "LIFETIME"}
    with pytest.raises(BudgetExhausted) as caught:
        budgets.access_spend("t", parameters, usage, set_at, ts(2024, 5, 3, 23))
    assert "CALENDAR_DAY" in caught.value.message and "refreshes" in caught.value.message
    usage = budgets.access_spend("t", parameters, usage, set_at, ts(2024, 5, 4, 1))  # a new day
    details, aggregate = budgets.access_details(parameters, usage, set_at, ts(2024, 5, 4, 2))
    assert [d["remainingBudget"] for d in details] == [1, 0] and aggregate == 0
    with pytest.raises(BudgetExhausted) as caught:
        budgets.access_spend("t", parameters, usage, set_at, ts(2024, 5, 9))
    assert "LIFETIME" in caught.value.message


def test_access_budget_without_refresh_lapses_with_its_period():
    set_at = ts(2024, 5, 3, 10)  # a Friday
    parameters = [{"type": "CALENDAR_WEEK", "budget": 5, "autoRefresh": "DISABLED"}]
    usage = budgets.access_spend("t", parameters, {}, set_at, ts(2024, 5, 4))
    details, aggregate = budgets.access_details(parameters, usage, set_at, ts(2024, 5, 5))
    assert aggregate == 4 and details[0]["startTime"] == ts(2024, 4, 29) and details[0]["endTime"] == ts(2024, 5, 6)
    assert budgets.access_details(parameters, usage, set_at, ts(2024, 5, 6))[1] == 0
    with pytest.raises(BudgetExhausted):
        budgets.access_spend("t", parameters, usage, set_at, ts(2024, 5, 7))


def test_zero_budget_allows_nothing():
    parameters = [{"type": "LIFETIME", "budget": 0}]
    assert budgets.access_details(parameters, {}, 0.0, 1.0)[1] == 0
    with pytest.raises(BudgetExhausted):
        budgets.access_spend("t", parameters, {}, 0.0, 1.0)
