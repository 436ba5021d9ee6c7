"""Calendar periods in UTC, for budgets that refresh: computed from timestamps when read, never by a timer.

Days start at 00:00 UTC, weeks on Monday 00:00 UTC (ISO weeks), months on the first at 00:00 UTC. A LIFETIME
period starts when the budget is set and never ends. Times are epoch seconds (floats), as the rest of the server
keeps them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

CALENDAR_DAY, CALENDAR_WEEK, CALENDAR_MONTH, LIFETIME = "CALENDAR_DAY", "CALENDAR_WEEK", "CALENDAR_MONTH", "LIFETIME"
PERIOD_TYPES = (CALENDAR_DAY, CALENDAR_WEEK, CALENDAR_MONTH)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def period_start(period: str, t: float) -> float:
    """Start of the calendar period that contains `t`."""
    day = _utc(t).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == CALENDAR_DAY:
        return day.timestamp()
    if period == CALENDAR_WEEK:
        return (day - timedelta(days=day.weekday())).timestamp()
    if period == CALENDAR_MONTH:
        return day.replace(day=1).timestamp()
    raise ValueError(f"not a calendar period: {period}")


def period_end(period: str, t: float) -> float:
    """End (exclusive: the next period's start) of the calendar period that contains `t`."""
    start = _utc(period_start(period, t))
    if period == CALENDAR_DAY:
        return (start + timedelta(days=1)).timestamp()
    if period == CALENDAR_WEEK:
        return (start + timedelta(days=7)).timestamp()
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month).timestamp()


def month_start(t: float) -> float:
    return period_start(CALENDAR_MONTH, t)


def refreshed(period: str, auto_refresh: bool, since: float, now: float) -> bool:
    """Whether usage counted from `since` (the start of the period it was counted in) has been refreshed by `now`:
    only an auto-refreshing calendar period refreshes, when `now` falls in a later period."""
    return auto_refresh and period in PERIOD_TYPES and period_start(period, now) > since


def window(period: str, auto_refresh: bool, since: float, now: float) -> tuple[float, float | None]:
    """(startTime, endTime) of the allocation in force at `now`.

    An auto-refreshing calendar budget is the current period. A calendar budget without refresh is the one
    allocation made for the period it was set in (`since`); it ends with that period and is not renewed (it must be
    set again). A lifetime budget starts at `since` and has no end.
    """
    if period == LIFETIME:
        return since, None
    anchor = now if auto_refresh else since
    return period_start(period, anchor), period_end(period, anchor)
