"""Summaries of one cell (a method variant in a dataset setting) and paired comparisons of cells on
the same test episodes, in display units: percentage points for accuracy, raw MSE for regression.

A paired comparison is any per-episode linear combination of cells, sum_k c_k * value_k, over the
seeds every cell has: a difference (+1, -1), a difference of differences (+1, -1, -1, +1), or a
least-squares slope across meta-batch sizes. Its CI comes from stats.hierarchical_bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.common.stats import BootstrapCI, MeanCI, hierarchical_bootstrap, mean_ci95, seed_spread
from benchmarks.report.runs import Cell, Run

# accuracy is stored as a fraction and shown in %; MSE is shown as it is
SCALE = {"accuracy": 100.0, "mse": 1.0}
UNIT = {"accuracy": "pp", "mse": "MSE"}


def metric_of(cells: Sequence[Cell]) -> str:
    """The one metric of the runs in cells; mixing accuracy with MSE is an error."""
    metrics = {run.metric for cell in cells for run in cell.values()}
    if len(metrics) != 1:
        raise ValueError(f"a comparison needs runs of one metric, got {sorted(map(str, metrics))}")
    return metrics.pop()  # type: ignore[return-value]


def provenance_flags(runs: Sequence[Run]) -> dict[str, tuple[str, ...]]:
    """The union over runs of the splits behind each data flag (partial, checksum mismatch, cache only)."""
    return {
        name: tuple(sorted({s for r in runs for s in getattr(r, name)}))
        for name in ("partial_splits", "checksum_splits", "cache_only_splits")
    }


@dataclass(frozen=True)
class CellSummary:
    """Mean and episode CI pooled over seeds, seed spread, and bookkeeping of one cell."""

    metric: str
    pooled: MeanCI  # in display units
    spread: float | None  # std of per-seed means, display units
    seeds: tuple[int, ...]
    episodes_per_seed: tuple[int, ...]  # in seed order
    reduced: bool
    partial_splits: tuple[str, ...]
    checksum_splits: tuple[str, ...]
    cache_only_splits: tuple[str, ...]
    iterations: tuple[int, ...]
    best_iterations: tuple[int, ...]


def summarize(cell: Cell) -> CellSummary:
    if not cell:
        raise ValueError("summarize needs a cell with at least one run")
    metric = metric_of([cell])
    scale = SCALE[metric]
    seeds = tuple(sorted(cell))
    runs = [cell[s] for s in seeds]
    pooled = mean_ci95(np.concatenate([r.per_episode for r in runs]) * scale)
    return CellSummary(
        metric=metric,
        pooled=pooled,
        spread=seed_spread([float(r.per_episode.mean()) * scale for r in runs]),
        seeds=seeds,
        episodes_per_seed=tuple(r.per_episode.size for r in runs),
        reduced=any(r.reduced for r in runs),
        **provenance_flags(runs),
        iterations=tuple(r.iterations_done for r in runs if r.iterations_done is not None),
        best_iterations=tuple(r.best_iteration for r in runs if r.best_iteration is not None),
    )


@dataclass(frozen=True)
class Paired:
    """A paired per-episode combination of cells with its bootstrap CI (display units)."""

    metric: str
    ci: BootstrapCI
    seeds: tuple[int, ...]
    reduced: bool
    partial_splits: tuple[str, ...]
    checksum_splits: tuple[str, ...]
    cache_only_splits: tuple[str, ...]

    @property
    def unit(self) -> str:
        return UNIT[self.metric]


def paired_combination(terms: Sequence[tuple[float, Cell]]) -> Paired | None:
    """sum_k c_k * cell_k per episode over the seeds all cells share; None when they share none."""
    if not terms or any(not cell for _, cell in terms):
        return None
    metric = metric_of([cell for _, cell in terms])
    seeds = tuple(sorted(set.intersection(*(set(cell) for _, cell in terms))))
    if not seeds:
        return None
    scale = SCALE[metric]
    groups = [scale * sum(c * cell[s].per_episode for c, cell in terms) for s in seeds]
    runs = [cell[s] for _, cell in terms for s in seeds]
    return Paired(
        metric=metric,
        ci=hierarchical_bootstrap(groups),
        seeds=seeds,
        reduced=any(r.reduced for r in runs),
        **provenance_flags(runs),
    )


def paired_difference(a: Cell, b: Cell) -> Paired | None:
    """a - b per episode, paired by seed."""
    return paired_combination([(1.0, a), (-1.0, b)])


def level(cell: Cell) -> Paired | None:
    """The cell's own mean with a bootstrap CI over seeds and episodes (for comparisons with a
    published level)."""
    return paired_combination([(1.0, cell)])
