"""The noisy releases: noise is always there, its spread matches the configured scale (generous tolerances, many
draws; OpenDP cannot be seeded), OpenDP's own accounting agrees with the cost model, and bad input is refused."""

from __future__ import annotations

import math
import statistics

import pytest

from opencleanrooms.privacy import costs, mechanisms
from opencleanrooms.privacy.mechanisms import Bounds

DRAWS = 3000


def spread(values) -> float:
    return statistics.pstdev(values)


@pytest.mark.parametrize(("sensitivity", "noise"), [(1, 10), (3, 30), (2.5, 17)])
def test_laplace_spread_matches_the_scale(sensitivity, noise):
    scale = mechanisms.noise_scale(sensitivity, noise)
    assert scale == pytest.approx(noise * sensitivity, rel=1e-9) and scale >= noise * sensitivity
    draws = [mechanisms.laplace(1000, sensitivity, noise) for _ in range(DRAWS)]
    assert statistics.mean(draws) == pytest.approx(1000, abs=6 * scale * math.sqrt(2) / math.sqrt(DRAWS))
    assert spread(draws) == pytest.approx(scale * math.sqrt(2), rel=0.12)
    assert len(set(draws)) > 20  # answers differ between runs


@pytest.mark.parametrize("noise", [10, 30, 37, 100])
@pytest.mark.parametrize("sensitivity", [1, 7, 0.3])
def test_opendp_accounting_never_exceeds_the_unit(noise, sensitivity):
    integer = isinstance(sensitivity, int)
    measurement, _ = mechanisms._measurement(integer, False, sensitivity, noise)
    assert measurement.map(sensitivity) <= float(costs.unit_epsilon(noise))


def test_integer_releases_stay_integers_and_counts_are_not_negative():
    assert all(isinstance(mechanisms.noisy_count(5, 3, 10), int) for _ in range(50))
    assert all(mechanisms.noisy_count_distinct(0, 10) >= 0 for _ in range(200))
    assert isinstance(mechanisms.noisy_sum(10, Bounds(0, 4), 2, 10), int)
    assert isinstance(mechanisms.noisy_sum(10.5, Bounds(0, 4), 2, 10), float)


def test_count_noise_grows_with_the_contribution_limit():
    narrow = spread([mechanisms.noisy_count(10_000, 1, 10) for _ in range(DRAWS)])
    wide = spread([mechanisms.noisy_count(10_000, 4, 10) for _ in range(DRAWS)])
    assert wide / narrow == pytest.approx(4, rel=0.2)


def test_sum_sensitivity_uses_the_larger_bound_and_the_limit():
    assert mechanisms.sum_sensitivity(Bounds(-8, 2), 3) == 24
    assert mechanisms.sum_sensitivity(Bounds(0, 0.5), 2) == 1.0
    assert mechanisms.sum_sensitivity(Bounds(0, 0), 2) == 1


def test_avg_and_stddev_land_near_the_truth_on_large_data():
    # 100k users, values in [0, 10]: true mean 5, true population stddev ~2.887 (uniform)
    n, total, squares = 100_000, 500_000, 100_000 * (100 / 3)
    avgs = [mechanisms.noisy_avg(total, n, Bounds(0, 10), 1, 10) for _ in range(200)]
    assert statistics.mean(avgs) == pytest.approx(5, abs=0.05)
    assert all(0 <= a <= 10 for a in avgs)
    deviations = [mechanisms.noisy_stddev(total, squares, n, Bounds(0, 10), 1, 10) for _ in range(200)]
    assert statistics.mean(deviations) == pytest.approx(math.sqrt(100 / 3 - 25), abs=0.1)
    assert all(0 <= d <= 10 for d in deviations)


def test_small_answers_are_clamped_post_processing():
    assert all(0 <= mechanisms.noisy_avg(3, 1, Bounds(0, 4), 1, 100) <= 4 for _ in range(100))
    assert all(0 <= mechanisms.noisy_stddev(3, 9, 1, Bounds(0, 4), 1, 100) <= 4 for _ in range(100))


def test_magnitude_buckets():
    assert mechanisms.magnitude_bucket(0.5) == 0
    assert mechanisms.magnitude_bucket(1) == 1
    assert mechanisms.magnitude_bucket(7.9) == 3
    assert mechanisms.magnitude_bucket(8) == 4
    assert mechanisms.magnitude_bucket(-8) == -4
    assert mechanisms.magnitude_bucket(1e300) == mechanisms.BUCKET_LIMIT


def test_private_bounds_find_well_populated_buckets_and_ignore_empty_ones():
    histogram = {3: 5000, 7: 3000, -2: 4000, 40: 1}
    found = [mechanisms.private_bounds(histogram, 10) for _ in range(100)]
    # bucket 40 has one user, far below the threshold; an empty bucket passes it rarely (widening only)
    assert all(b.lower <= -4 and b.upper >= 128 for b in found)
    assert sum(b == Bounds(-4, 128) for b in found) >= 80
    empty = [mechanisms.private_bounds({}, 10) for _ in range(200)]
    assert sum(b != Bounds(0, 1) for b in empty) <= 200 * mechanisms.BOUNDS_FALSE_POSITIVE * 2 + 5


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "3", None, True])
def test_bad_inputs_are_refused(bad):
    with pytest.raises(ValueError):
        mechanisms.laplace(bad, 1, 10)
    with pytest.raises(ValueError):
        mechanisms.laplace(1, bad, 10)


def test_bad_limits_and_histograms_are_refused():
    with pytest.raises(ValueError):
        mechanisms.noisy_count(5, 0, 10)
    with pytest.raises(ValueError):
        mechanisms.laplace(5, 0, 10)
    with pytest.raises(ValueError):
        mechanisms.private_bounds({65: 3}, 10)
    with pytest.raises(ValueError):
        mechanisms.private_bounds({1: -3}, 10)
