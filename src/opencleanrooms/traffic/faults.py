"""Fault injection for users' tests: chosen operations fail on chosen calls, reproducibly.

A rule names an operation (or "*"), the error to answer, and when: on given call numbers (1-based, counted per
rule in this server process), on every Nth call, or at a rate drawn from a seeded random generator. Off unless
configured.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

ERRORS = ("InternalServerException", "ThrottlingException", "crash")  # crash: an unexpected exception


@dataclass
class FaultRule:
    operation: str
    error: str
    calls: frozenset[int] = frozenset()
    every: int | None = None
    rate: float | None = None
    seen: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def fires(self) -> bool:
        self.seen += 1
        if self.seen in self.calls:
            return True
        if self.every and self.seen % self.every == 0:
            return True
        return self.rate is not None and self.rng.random() < self.rate


def parse_rule(text: str) -> dict:
    """`OPERATION=ERROR@calls:1,2` | `OPERATION=ERROR@every:3` | `OPERATION=ERROR@rate:0.25` -> a rule dict."""
    head, _, when = text.partition("@")
    operation, _, error = head.partition("=")
    kind, _, value = when.partition(":")
    try:
        if kind == "calls":
            return {"operation": operation, "error": error, "calls": [int(v) for v in value.split(",")]}
        if kind == "every":
            return {"operation": operation, "error": error, "every": int(value)}
        if kind == "rate":
            return {"operation": operation, "error": error, "rate": float(value)}
    except ValueError:
        pass
    raise ValueError(f"fault rule must look like OPERATION=ERROR@calls:1,2 | @every:N | @rate:P, got {text!r}")


class FaultInjector:
    def __init__(self, rules: list[dict], seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        for index, rule in enumerate(rules):
            unknown = set(rule) - {"operation", "error", "calls", "every", "rate"}
            if unknown or not rule.get("operation") or rule.get("error") not in ERRORS:
                raise ValueError(f"bad fault rule {rule!r}: needs operation, error (one of {', '.join(ERRORS)}) "
                                 "and one of calls, every, rate")
            rate, every, calls = rule.get("rate"), rule.get("every"), rule.get("calls", ())
            if (rate is not None and not 0 <= rate <= 1) or (every is not None and every < 1) \
                    or any(n < 1 for n in calls) or (rate is None and every is None and not calls):
                raise ValueError(f"bad fault rule {rule!r}: rate is 0..1, every and calls count from 1")
            self._rules.append(FaultRule(rule["operation"], rule["error"], frozenset(calls), every, rate,
                                         rng=random.Random(f"{seed}/{index}")))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def fault_for(self, operation: str) -> str | None:
        """The error to inject for this call of the operation, if a rule fires."""
        fault = None
        with self._lock:  # requests are handled on several threads; rules count calls
            for rule in self._rules:
                if rule.operation in (operation, "*") and rule.fires() and fault is None:
                    fault = rule.error
        return fault
