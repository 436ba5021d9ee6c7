"""`opencleanrooms budgets`: the privacy budgets of every collaboration (or one), in plain units, read from the
database.

For the operator (no AWS credentials; members use ListPrivacyBudgets). A differential privacy budget shows the
epsilon spent out of its total, how many more aggregations of each type it pays for (the remainingCount of
ListPrivacyBudgets, each type alone) and when it refreshes; an access budget shows each of its budgets' uses left
and their periods.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

_TYPES = {"COUNT": "COUNT", "COUNT_DISTINCT": "COUNT DISTINCT", "SUM": "SUM", "AVG": "AVG", "STDDEV": "STDDEV"}


def register_cli(commands, *, storage_flags: Callable[[argparse.ArgumentParser], None],
                 settings_from_args: Callable[[argparse.Namespace], object]) -> None:
    parser = commands.add_parser("budgets", help="privacy budgets in plain units: queries left, epsilon, refreshes")
    storage_flags(parser)
    parser.add_argument("--collaboration", metavar="ID", help="only this collaboration")
    parser.set_defaults(func=lambda args: _budgets(args, settings_from_args(args)))


def _budgets(args, settings) -> int:
    from opencleanrooms.app import open_database
    from opencleanrooms.storage import privacy_budgets as store

    db = open_database(settings)
    with db.read() as conn:
        rows = store.all_templates(conn, args.collaboration)
    db.dispose()
    print("\n".join(render(rows, time.time())) if rows else
          "No privacy budgets" + (f" in collaboration {args.collaboration}." if args.collaboration else "."))
    return 0


def render(rows, now: float) -> list[str]:
    """The report's lines: a heading per collaboration, then its budgets."""
    lines, current = [], None
    for row in rows:
        if row["collaboration_id"] != current:
            current = row["collaboration_id"]
            lines += ([""] if lines else []) + [f"Collaboration {current} ({row['collaboration_name']})"]
        lines += _differential_privacy(row, now) if row["budget_type"] == "DIFFERENTIAL_PRIVACY" else \
            _access(row, now)
    return lines


def _differential_privacy(row, now: float) -> list[str]:
    from opencleanrooms.privacy import budgets, costs

    parameters = row["doc"]["differentialPrivacy"]
    epsilon, noise = parameters["epsilon"], parameters["usersNoisePerQuery"]
    ledger = row["ledger"] or {}
    spent = budgets.dp_spent(costs.decode_fraction(ledger.get("spent")), ledger.get("since", row["budget_set_at"]),
                             row["auto_refresh"], now)
    found = {a["type"]: a for a in costs.budget_aggregations(epsilon, spent, noise)}
    left = ", ".join(f"{name} {found[t]['remainingCount']}/{found[t]['maxCount']}" for t, name in _TYPES.items())
    refresh = budgets.dp_refresh_time(row["auto_refresh"], now)
    return [f"  Differential privacy budget (template {row['id']})",
            f"    epsilon: {float(spent):.4g} spent of {epsilon} ({float(epsilon - spent):.4g} left); "
            f"noise per query: {noise} users",
            f"    queries left (each type alone, left/total): {left}",
            "    a GROUP BY query also uses one COUNT DISTINCT",
            f"    next refresh: {_when(refresh) if refresh else 'never (autoRefresh NONE)'}"]


def _access(row, now: float) -> list[str]:
    from opencleanrooms.privacy import budgets

    parameters = row["doc"]["accessBudget"]
    details, aggregate = budgets.access_details(parameters["budgetParameters"], row["ledger"] or {},
                                                row["budget_set_at"], now)
    lines = [f"  Access budget of {parameters['resourceArn']} (template {row['id']})"]
    for detail in details:
        kind = detail["budgetType"]
        if kind == "LIFETIME":
            period = "never refreshes"
        else:
            span = f"period {_when(detail['startTime'])} to {_when(detail['endTime'])}"
            period = (f"{span}; refreshes {_when(detail['endTime'])}" if detail.get("autoRefresh") == "ENABLED"
                      else f"{span}; does not refresh (lapses at the end of the period)")
        lines.append(f"    {kind}: {detail['remainingBudget']} of {detail['budget']} left ({period})")
    lines.append(f"    aggregate remaining: {aggregate}")
    return lines


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
