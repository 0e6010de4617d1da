"""benchmarks.common.stats against hand-computed values and synthetic data with known outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.common.stats import hierarchical_bootstrap, least_squares_weights, mean_ci95, median_ci, seed_spread


def test_mean_ci95_matches_hand_computation():
    # mean 2.5; std(ddof=1) = sqrt(5/3) = 1.290994; ci = 1.96 * 1.290994 / 2
    result = mean_ci95([1.0, 2.0, 3.0, 4.0])
    assert result.mean == pytest.approx(2.5)
    assert result.std == pytest.approx(math.sqrt(5 / 3))
    assert result.ci95 == pytest.approx(1.96 * math.sqrt(5 / 3) / 2)
    assert result.n == 4


def test_mean_ci95_single_value_has_no_interval_and_empty_is_an_error():
    assert math.isnan(mean_ci95([0.7]).ci95)
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci95([])


def test_seed_spread_is_std_of_seed_means():
    assert seed_spread([0.5, 0.7]) == pytest.approx(math.sqrt(0.02))
    assert seed_spread([0.5]) is None


def test_bootstrap_of_constant_differences_is_a_point():
    ci = hierarchical_bootstrap([np.full(50, 0.3), np.full(40, 0.3)])
    assert (ci.mean, ci.low, ci.high) == pytest.approx((0.3, 0.3, 0.3))
    assert ci.n_seeds == 2 and ci.n_episodes == 90


def test_bootstrap_two_constant_seeds_spans_both_seed_values():
    # seeds {0, 0, 0} and {1, 1, 1}: a resample takes seed pairs (0,0), (0,1), (1,0), (1,1) with
    # probability 1/4 each, so its mean is 0, 0.5 or 1 and the 2.5/97.5 percentiles are 0 and 1.
    ci = hierarchical_bootstrap([np.zeros(3), np.ones(3)])
    assert ci.mean == pytest.approx(0.5)
    assert ci.low == pytest.approx(0.0)
    assert ci.high == pytest.approx(1.0)


def test_bootstrap_detects_a_known_shift_and_covers_zero_without_one():
    rng = np.random.default_rng(1)
    shifted = [rng.normal(0.5, 1.0, 400) for _ in range(3)]
    null = [rng.normal(0.0, 1.0, 400) for _ in range(3)]
    ci_shifted = hierarchical_bootstrap(shifted)
    ci_null = hierarchical_bootstrap(null)
    assert ci_shifted.above_zero and ci_shifted.low < 0.5 < ci_shifted.high
    assert not ci_null.above_zero and not ci_null.below_zero


def test_bootstrap_is_deterministic_and_depends_on_its_seed():
    rng = np.random.default_rng(2)
    groups = [rng.normal(0.0, 1.0, 100) for _ in range(2)]
    assert hierarchical_bootstrap(groups) == hierarchical_bootstrap(groups)
    assert hierarchical_bootstrap(groups, seed=5) != hierarchical_bootstrap(groups, seed=6)


def test_single_seed_bootstrap_agrees_with_normal_interval():
    values = np.random.default_rng(3).normal(0.2, 1.0, 2000)
    ci = hierarchical_bootstrap([values])
    normal = mean_ci95(values)
    assert (ci.high - ci.low) / 2 == pytest.approx(normal.ci95, rel=0.1)


def test_bootstrap_counts_seed_variance():
    # three seeds whose means differ by far more than episode noise: the hierarchical CI must be
    # much wider than an episode-only CI of the pooled values
    rng = np.random.default_rng(4)
    groups = [offset + rng.normal(0.0, 0.1, 500) for offset in (-1.0, 0.0, 1.0)]
    ci = hierarchical_bootstrap(groups)
    episode_only = mean_ci95(np.concatenate(groups)).ci95
    assert (ci.high - ci.low) / 2 > 10 * episode_only


def test_bootstrap_handles_unequal_seed_sizes_and_rejects_empty_input():
    ci = hierarchical_bootstrap([np.ones(10), np.ones(30) * 3])
    assert ci.mean == pytest.approx((10 + 90) / 40)
    assert 1.0 <= ci.low <= ci.high <= 3.0
    with pytest.raises(ValueError):
        hierarchical_bootstrap([])
    with pytest.raises(ValueError):
        hierarchical_bootstrap([np.array([])])


def test_least_squares_weights_give_the_slope():
    x = [1.0, 2.0, 3.0, 5.0]
    y = [2 * v + 1 for v in x]
    assert float(least_squares_weights(x) @ np.array(y)) == pytest.approx(2.0)
    assert float(least_squares_weights(x).sum()) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        least_squares_weights([3.0, 3.0])


def test_median_ci_takes_the_order_statistics_of_the_binomial_table():
    """Published 95% ranks (Conover, table A3): n=9 -> 2nd and 8th, n=20 -> 6th and 15th, n=25 -> 8th
    and 18th; n=6 -> min and max (coverage 1 - 2/64); under 6 values no interval reaches 95%."""
    for n, (low, high), coverage in ((6, (1, 6), 1 - 2 / 64), (9, (2, 8), 1 - 20 / 512), (20, (6, 15), None)):
        ci = median_ci(np.arange(n, 0, -1, dtype=float))  # n .. 1, unsorted on purpose
        assert (ci.low, ci.high, ci.n) == (low, high, n)
        if coverage is not None:
            assert ci.coverage == pytest.approx(coverage)
    assert (median_ci(np.arange(1.0, 26.0)).low, median_ci(np.arange(1.0, 26.0)).high) == (8.0, 18.0)
    assert median_ci([3.0, 1.0, 2.0, 5.0, 4.0]) is None
    assert median_ci([1.0, 2.0, 3.0, 4.0, 5.0], level=0.9) is not None  # min..max covers 93.75%
    with pytest.raises(ValueError, match="level"):
        median_ci([1.0] * 9, level=1.0)


def test_median_ci_covers_the_true_median_as_often_as_it_says():
    """Skewed draws (exponential, median ln 2), 4000 samples of 9: the interval must cover the true
    median about 96.1% of the time; a wrong rank (1st-9th: 99.6%, 3rd-7th: 82%) would miss."""
    rng = np.random.default_rng(0)
    draws = rng.exponential(size=(4000, 9))
    covered = [ci.low <= math.log(2) <= ci.high for ci in (median_ci(row) for row in draws)]
    assert np.mean(covered) == pytest.approx(1 - 20 / 512, abs=0.01)
