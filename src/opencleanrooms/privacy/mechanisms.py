"""Noisy releases through OpenDP's measurements (never a hand-written sampler).

Each function takes the exact statistic computed over user-bounded data (every user contributes at most
`contribution_limit` rows, every value clamped to [lower, upper]) and returns it with Laplace noise of scale
`usersNoisePerQuery` x sensitivity, so each elementary release is epsilon-DP with epsilon = 1/usersNoisePerQuery
(costs.unit_epsilon). OpenDP checks that claim: a measurement whose own privacy map exceeds the unit is never used.
Integers get the discrete Laplace (exact, no floating-point leak); floats get OpenDP's discretized Laplace. The
random draws come from OpenDP's cryptographically secure generator; nothing here can seed it.

Why Laplace rather than Gaussian: budgets here are pure epsilon (the API has no delta), and pure-DP Laplace composes
by simple addition, which is what lets PreviewPrivacyImpact promise exact counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import opendp.prelude as dp

from opencleanrooms.privacy import costs

dp.enable_features("contrib")  # OpenDP's measurements are behind this flag; it enables nothing unvetted by itself

_I64 = 2 ** 63 - 1
BUCKET_LIMIT = 64  # magnitude buckets for bounds: |k| <= 64 covers values up to 2^64
# Probability that some empty bucket passes the threshold is at most this (utility only: privacy holds regardless).
BOUNDS_FALSE_POSITIVE = 1e-6  # a spurious bucket ruins the answer (huge bounds, huge noise): keep it very rare


@dataclass(frozen=True)
class Bounds:
    lower: float
    upper: float

    @property
    def magnitude(self) -> float:
        return max(abs(self.lower), abs(self.upper))


@lru_cache(maxsize=512)
def _measurement(integer: bool, vector: bool, sensitivity: float, users_noise_per_query: int):
    """A Laplace measurement whose privacy map at `sensitivity` is at most the unit epsilon (scale rounded up until
    OpenDP agrees), with that scale."""
    target = float(costs.unit_epsilon(users_noise_per_query))
    atom = dp.atom_domain(T="i64") if integer else dp.atom_domain(T="f64", nan=False)
    domain = dp.vector_domain(atom) if vector else atom
    metric = (dp.l1_distance(T="i64" if integer else "f64") if vector
              else dp.absolute_distance(T="i64" if integer else "f64"))
    d_in = int(sensitivity) if integer else float(sensitivity)
    scale = float(users_noise_per_query) * float(sensitivity)
    for _ in range(64):
        measurement = dp.m.make_laplace(domain, metric, scale=scale)
        if measurement.map(d_in) <= target:
            return measurement, scale
        scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
    raise ArithmeticError("no Laplace scale meets the unit epsilon")  # never seen; OpenDP rounds by an ulp or two


def _is_int(*values) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _I64 for v in values)


def _finite(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def laplace(exact: int | float, sensitivity: int | float, users_noise_per_query: int) -> int | float:
    """One elementary release: `exact` plus Laplace(usersNoisePerQuery x sensitivity), epsilon 1/usersNoisePerQuery.
    Integer inputs (and an integer sensitivity) stay integers."""
    _finite("the exact value", exact)
    _finite("the sensitivity", sensitivity)
    if sensitivity <= 0:
        raise ValueError("the sensitivity must be positive")
    integer = _is_int(exact, sensitivity)
    measurement, _ = _measurement(integer, False, sensitivity if integer else float(sensitivity),
                                  users_noise_per_query)
    return measurement(int(exact) if integer else float(exact))


def noise_scale(sensitivity: int | float, users_noise_per_query: int) -> float:
    """The Laplace scale a release of this sensitivity gets (standard deviation = scale x sqrt 2)."""
    integer = _is_int(sensitivity)
    return _measurement(integer, False, sensitivity if integer else float(sensitivity), users_noise_per_query)[1]


# ------------------------------------------------------------------------------------------------ aggregations


def noisy_count_distinct(exact: int, users_noise_per_query: int) -> int:
    """COUNT(DISTINCT user): a user changes it by at most 1."""
    return max(laplace(exact, 1, users_noise_per_query), 0)


def noisy_count(exact: int, contribution_limit: int, users_noise_per_query: int) -> int:
    """COUNT of rows: a user changes it by at most their contribution limit."""
    _positive_int("the contribution limit", contribution_limit)
    return max(laplace(exact, contribution_limit, users_noise_per_query), 0)


def sum_sensitivity(bounds: Bounds, contribution_limit: int) -> int | float:
    """What one user can change a sum of clamped values by."""
    _positive_int("the contribution limit", contribution_limit)
    magnitude = bounds.magnitude
    if magnitude == 0:
        return 1  # all values are 0: any positive sensitivity is sound
    return contribution_limit * (int(magnitude) if float(magnitude).is_integer() else magnitude)


def noisy_sum(exact: int | float, bounds: Bounds, contribution_limit: int, users_noise_per_query: int):
    """SUM of values clamped to `bounds` (the caller clamps before summing)."""
    return laplace(exact, sum_sensitivity(bounds, contribution_limit), users_noise_per_query)


def noisy_avg(exact_sum: int | float, exact_count: int, bounds: Bounds, contribution_limit: int,
              users_noise_per_query: int) -> float:
    """AVG = noisy SUM / noisy COUNT (two releases), kept within the bounds (post-processing)."""
    total = noisy_sum(exact_sum, bounds, contribution_limit, users_noise_per_query)
    count = noisy_count(exact_count, contribution_limit, users_noise_per_query)
    return float(min(max(total / max(count, 1), bounds.lower), bounds.upper))


def noisy_stddev(exact_sum: int | float, exact_sum_of_squares: int | float, exact_count: int, bounds: Bounds,
                 contribution_limit: int, users_noise_per_query: int) -> float:
    """Population STDDEV from a noisy SUM, a noisy SUM of squares (values squared after clamping, so within
    [0, magnitude^2]) and a noisy COUNT: three releases; the result is kept within [0, upper - lower]."""
    total = noisy_sum(exact_sum, bounds, contribution_limit, users_noise_per_query)
    squares = bounds.magnitude ** 2
    square_bounds = Bounds(0, int(squares) if float(squares).is_integer() else squares)
    total_squares = noisy_sum(exact_sum_of_squares, square_bounds, contribution_limit, users_noise_per_query)
    count = max(noisy_count(exact_count, contribution_limit, users_noise_per_query), 1)
    variance = max(total_squares / count - (total / count) ** 2, 0.0)
    return float(min(math.sqrt(variance), bounds.upper - bounds.lower))


# ------------------------------------------------------------------------------------------------ bounds


def magnitude_bucket(value: float) -> int:
    """The signed magnitude bucket of a value: 0 for |v| < 1, else sign(v) x (floor(log2 |v|) + 1), capped at
    +-BUCKET_LIMIT. Bucket k > 0 holds [2^(k-1), 2^k). The rewrite counts each user once, in the bucket of their
    value of largest magnitude."""
    magnitude = abs(value)
    if magnitude < 1:
        return 0
    k = min(math.frexp(magnitude)[1], BUCKET_LIMIT)  # frexp: magnitude = m * 2^e with 0.5 <= m < 1
    return k if value > 0 else -k


def bounds_threshold(users_noise_per_query: int) -> float:
    """The noisy user count a bucket needs to set a bound."""
    buckets = 2 * BUCKET_LIMIT + 1
    return noise_scale(1, users_noise_per_query) * math.log(buckets / (2 * BOUNDS_FALSE_POSITIVE))


def private_bounds(histogram: Mapping[int, int], users_noise_per_query: int) -> Bounds:
    """Clamping bounds from a histogram of users per magnitude bucket (one release: a user is in one bucket, so
    the vector's L1 sensitivity is 1). The widest buckets whose noisy counts pass the threshold set the bounds;
    with none, the bounds are [0, 1]."""
    keys = range(-BUCKET_LIMIT, BUCKET_LIMIT + 1)
    unknown = [k for k in histogram if k not in keys]
    if unknown:
        raise ValueError(f"unknown magnitude buckets: {unknown}")
    exact = [int(histogram.get(k, 0)) for k in keys]
    if any(n < 0 for n in exact):
        raise ValueError("bucket counts must not be negative")
    measurement, _ = _measurement(True, True, 1, users_noise_per_query)
    noisy = measurement(exact)
    threshold = bounds_threshold(users_noise_per_query)
    passing = [k for k, n in zip(keys, noisy, strict=True) if n >= threshold]
    lower = -(2 ** -min(passing)) if passing and min(passing) < 0 else 0
    upper = 2 ** max(passing) if passing and max(passing) > 0 else 1
    return Bounds(lower, upper)


# ------------------------------------------------------------------------------------------------ group keys

# delta of one GROUP BY query's key release: the chance that a group's key is released although the result would
# be the same without one user's data is at most this (docs/differential-privacy.md derives the total).
GROUP_DELTA = 1e-9


@lru_cache(maxsize=128)
def _key_measurement(users_noise_per_query: int):
    """OpenDP's thresholded Laplace over a map key -> users (each user in at most one group: l0 = l1 = linf = 1),
    with scale N and the smallest threshold whose privacy map OpenDP puts at (unit epsilon, GROUP_DELTA) or less."""
    target = float(costs.unit_epsilon(users_noise_per_query))
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64"))
    metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
    scale = float(users_noise_per_query)
    threshold = 1 + math.ceil(scale * math.log(1 / (2 * GROUP_DELTA)))
    for _ in range(10_000):
        measurement = dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)
        epsilon, delta = measurement.map((1, 1, 1))
        if epsilon > target:
            scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
        elif delta > GROUP_DELTA:
            threshold += max(1, threshold // 1000)
        else:
            return measurement, scale, threshold
    raise ArithmeticError("no thresholded Laplace meets the unit epsilon and GROUP_DELTA")


def group_threshold(users_noise_per_query: int) -> int:
    """The noisy user count a group needs to be released."""
    return _key_measurement(users_noise_per_query)[2]


def release_groups(users: Mapping[str, int], users_noise_per_query: int) -> dict[str, int]:
    """The groups whose noisy user count reaches the threshold, with those noisy counts: one release of epsilon
    1/N and delta GROUP_DELTA when each user is counted in at most one group."""
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in users.values()):
        raise ValueError("user counts must be non-negative integers")
    measurement, _, _ = _key_measurement(users_noise_per_query)
    return dict(measurement(dict(users)))
