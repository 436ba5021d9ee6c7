"""Differential privacy and budget arithmetic, pure: no services, storage, HTTP or SQL here.

`costs` says what each aggregation spends from a collaboration's epsilon (and so what PreviewPrivacyImpact shows),
`mechanisms` draws the noise through OpenDP's measurements, `periods` cuts time into the calendar periods budgets
refresh by. The derivation is in docs/differential-privacy.md.
"""

from opencleanrooms.privacy.costs import AGGREGATION_TYPES, BudgetExhausted

__all__ = ["AGGREGATION_TYPES", "BudgetExhausted"]
