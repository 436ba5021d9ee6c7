"""Request-rate limits: a token bucket per (account, operation), as AWS throttles per account and API.

Rules map an operation name (or "*" for every operation) to a rate in requests per second and a burst. Buckets
live in the server process: with several worker processes each keeps its own, so an account can reach up to
workers x rate in total (docs/behaviour.md says so).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

# AWS publishes one request-rate quota for Clean Rooms (the quotas page of the user guide).
PROFILES: dict[str, dict[str, tuple[float, float]]] = {
    "aws": {"BatchGetCollaborationAnalysisTemplate": (5.0, 5.0)},
    "none": {},
}
_MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


def parse_rule(text: str) -> tuple[str, tuple[float, float]]:
    """`OPERATION=RATE[:BURST]` (burst defaults to the rate, at least 1) -> (operation, (rate, burst))."""
    operation, sep, spec = text.partition("=")
    rate_text, _, burst_text = spec.partition(":")
    try:
        rate = float(rate_text)
        burst = float(burst_text) if burst_text else max(rate, 1.0)
    except ValueError:
        rate = burst = -1.0
    if not sep or not operation or rate <= 0 or burst < 1:
        raise ValueError(f"throttle rule must look like OPERATION=RATE[:BURST] with RATE > 0, got {text!r}")
    return operation, (rate, burst)


class Throttle:
    def __init__(self, rules: dict[str, tuple[float, float]], clock=time.monotonic) -> None:
        self._rules = dict(rules)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._clock = clock
        self._lock = threading.Lock()  # requests are handled on several threads

    @classmethod
    def from_settings(cls, profile: str, rules: list[str]) -> Throttle:
        if profile not in PROFILES:
            raise ValueError(f"unknown throttle profile {profile!r}; known: {', '.join(PROFILES)}")
        merged = dict(PROFILES[profile])
        merged.update(parse_rule(rule) for rule in rules)
        return cls(merged)

    def allow(self, account_id: str, operation: str) -> bool:
        """Take one token from this caller's bucket for the operation; False when it is empty."""
        rule = self._rules.get(operation) or self._rules.get("*")
        if rule is None:
            return True
        rate, burst = rule
        with self._lock:
            return self._take(account_id, operation, rate, burst)

    def _take(self, account_id: str, operation: str, rate: float, burst: float) -> bool:
        now = self._clock()
        key = (account_id, operation)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._buckets.clear()  # refilled buckets are equivalent to new ones; this only forgives debt
            bucket = self._buckets[key] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True
