"""Statistics of the reports: mean and 95% confidence interval over test episodes, spread over
training seeds, and a hierarchical paired bootstrap for differences on shared test episodes.

- Episode CI (docs/protocol.md, "Evaluation"): 1.96 * std / sqrt(n), std with ddof=1.
- Seed spread: the standard deviation (ddof=1) of the per-seed means; undefined for one seed.
- Paired bootstrap: the per-episode differences of two methods on the same episodes, grouped by
  training seed. Each resample draws seeds with replacement, then episodes with replacement within
  each drawn seed, and takes the pooled mean; the 95% CI is the 2.5/97.5 percentile of those means.
  Resampling seeds as well as episodes makes the interval account for training-seed variance, which
  an episode-only interval ignores. A fixed seeded numpy Generator makes every interval deterministic.
- Median interval (perf's paired speed-ups): the distribution-free confidence interval of a median
  from two order statistics (the sign test inverted); it assumes only independent draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.96
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
# Index draws per chunk, to bound memory (8 bytes each) when seeds hold many episodes.
_DRAWS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class MeanCI:
    """A mean over n values with the half-width of its normal 95% CI (nan when n = 1)."""

    mean: float
    ci95: float
    std: float
    n: int


def mean_ci95(values: Sequence[float] | np.ndarray) -> MeanCI:
    """Mean and 1.96 * std(ddof=1) / sqrt(n) of values (the episode CI of docs/protocol.md)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"mean_ci95 needs a non-empty 1-d sequence, got shape {x.shape}")
    if x.size == 1:
        return MeanCI(float(x[0]), math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    return MeanCI(float(x.mean()), Z95 * std / math.sqrt(x.size), std, int(x.size))


def seed_spread(seed_means: Sequence[float] | np.ndarray) -> float | None:
    """Standard deviation (ddof=1) of per-seed means; None with fewer than two seeds."""
    x = np.asarray(seed_means, dtype=np.float64)
    if x.size < 2:
        return None
    return float(x.std(ddof=1))


@dataclass(frozen=True)
class BootstrapCI:
    """Observed pooled mean and percentile 95% CI of a hierarchical bootstrap."""

    mean: float
    low: float
    high: float
    n_seeds: int
    n_episodes: int  # over all seeds
    resamples: int

    @property
    def above_zero(self) -> bool:
        return self.low > 0.0

    @property
    def below_zero(self) -> bool:
        return self.high < 0.0


def hierarchical_bootstrap(
    groups: Sequence[Sequence[float] | np.ndarray], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> BootstrapCI:
    """Percentile 95% CI of the pooled mean of per-seed groups of per-episode values.

    `groups[s]` holds seed s's values (e.g. paired per-episode differences). The observed statistic
    is the mean of all values pooled; each resample draws len(groups) seeds with replacement and,
    within each drawn seed, as many episodes as it holds, with replacement.
    """
    arrays = [np.asarray(g, dtype=np.float64) for g in groups]
    if not arrays or any(a.ndim != 1 or a.size == 0 for a in arrays):
        raise ValueError("hierarchical_bootstrap needs at least one seed, each with a non-empty 1-d array of values")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    n_seeds = len(arrays)
    lengths = np.array([a.size for a in arrays])
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    sums = np.zeros((resamples, n_seeds))
    for s, values in enumerate(arrays):
        rows, cols = np.nonzero(chosen == s)
        chunk = max(1, _DRAWS_PER_CHUNK // values.size)
        for start in range(0, rows.size, chunk):
            r, c = rows[start : start + chunk], cols[start : start + chunk]
            draws = rng.integers(0, values.size, size=(r.size, values.size))
            sums[r, c] = values[draws].sum(axis=1)
    replicate_means = sums.sum(axis=1) / lengths[chosen].sum(axis=1)
    low, high = np.percentile(replicate_means, [2.5, 97.5])
    observed = float(np.concatenate(arrays).mean())
    return BootstrapCI(observed, float(low), float(high), n_seeds, int(lengths.sum()), resamples)


@dataclass(frozen=True)
class MedianCI:
    """The median of n values and a confidence interval for it, covering with probability `coverage`."""

    median: float
    low: float
    high: float
    coverage: float
    n: int


def median_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> MedianCI | None:
    """Distribution-free interval for the median: (x_(k), x_(n+1-k)) of the sorted values, with the
    largest k whose coverage 1 - 2 P(B <= k-1), B ~ Binomial(n, 1/2), is at least `level` (Conover,
    Practical Nonparametric Statistics, 3.6). Exact for any continuous distribution, but only a few
    coverages are reachable: 96.1% with 9 values, 95.9% with 20. None when even (min, max) covers
    less than `level` (fewer than 6 values at 95%)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.ndim != 1:
        raise ValueError(f"median_ci needs a 1-d sequence, got shape {x.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = int(x.size)
    tail, k = 0.0, 0  # tail = P(B <= k-1)
    while k < n // 2:
        next_tail = tail + math.comb(n, k) / 2.0**n
        if 1.0 - 2.0 * next_tail < level:
            break
        tail, k = next_tail, k + 1
    if k == 0:
        return None
    return MedianCI(float(np.median(x)), float(x[k - 1]), float(x[n - k]), 1.0 - 2.0 * tail, n)


def least_squares_weights(x: Sequence[float]) -> np.ndarray:
    """Weights w with slope = sum_k w_k y_k for the least-squares line through (x_k, y_k).

    The slope is linear in y, so applying w to per-episode values gives per-episode slopes whose
    mean is the slope of the means: the trend can then be bootstrapped like any paired difference.
    """
    xs = np.asarray(x, dtype=np.float64)
    if xs.size < 2 or np.ptp(xs) == 0:
        raise ValueError(f"a slope needs at least two distinct x values, got {list(xs)}")
    centred = xs - xs.mean()
    return centred / float((centred**2).sum())
