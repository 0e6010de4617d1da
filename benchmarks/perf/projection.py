"""Projected compute time of a grid from the perf measurements.

Each run of the grid costs

    iterations x ms per meta-iteration  (scaled by the run's meta-batch / the measured meta-batch)
  + (test episodes + iterations // val_every x validation episodes) x adaptation ms per episode

using the measured row of the run's method in the closest measured setting, under the strategy the
run would execute with (benchmarks.device.execution.resolve_execution on the measured device). Anything
that differs between the run and the measurement (another setting, meta-batch, inner steps,
first order, batch-norm mode, ...) makes the projection an estimate, and the reasons are kept.
Linear scaling in the number of tasks is itself an approximation (batched GPU execution is
sub-linear), and a projection is only meaningful for the device it was measured on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.data.datasets import DATASETS
from benchmarks.perf.strategies import execution_strategy
from benchmarks.runs.build import execution_for
from benchmarks.runs.config import resolve
from benchmarks.runs.grids import load_grid

# Settings that change the cost of a meta-iteration or an adaptation, beyond dataset/way/shot/meta-batch.
TIMING_KEYS = (
    "query_train",
    "query_test",
    "inner.steps_train",
    "inner.steps_test",
    "first_order",
    "bn_mode",
    "compose.inner",
    "compose.outer",
    "regularizer.mu",
    "regularizer.gamma",
    "backbone.filters",
    "backbone.pooling",
)


@dataclass
class ProjectedRun:
    key: str
    dataset_setting: str  # e.g. "omniglot/20w1s"
    variant: str
    method: str
    train_hours: float
    eval_hours: float
    basis: str  # the measured setting, method and strategy used
    reasons: list[str] = field(default_factory=list)  # empty: an exact match of the measured setting

    @property
    def hours(self) -> float:
        return self.train_hours + self.eval_hours

    @property
    def estimate(self) -> bool:
        return bool(self.reasons)


def _closeness(run: dict[str, Any], measured: dict[str, Any]) -> tuple[int, ...]:
    """Lower is closer: image channels, image size, dataset, shot, way."""
    dataset = DATASETS.get(run["dataset"])
    return (
        int(dataset is None or dataset.channels != measured["channels"]),
        int(dataset is None or dataset.image_size != measured["image_size"]),
        int(run["dataset"] != measured["dataset"]),
        int(run["k_shot"] != measured["k_shot"]),
        int(run["n_way"] != measured["n_way"]),
    )


def _strategy_name(config: dict[str, Any], device: torch.device) -> str:
    return execution_strategy(execution_for(config, device)[0])


def project_run(run: Any, data: dict[str, Any]) -> ProjectedRun | None:
    """The projection of one RunSpec from perf measurements, or None when nothing fits (no measured
    row of a compatible method)."""
    config = run.config
    device = torch.device(data["environment"]["device"])
    settings = sorted(data["settings"], key=lambda s: _closeness(config, s))
    method = "fomaml" if config["method"] == "maml" and config["first_order"] else config["method"]
    for setting in settings:
        rows = [
            r
            for r in data["rows"]
            if r["setting"] == setting["key"]
            and r["implementation"] == "amfs-bench"
            and r["method"] == method
            and r["ms"] is not None
        ]
        if rows:
            break
    else:
        return None
    reasons: list[str] = []
    if _closeness(config, setting) != (0, 0, 0, 0, 0):
        reasons.append(f"timed as {setting['key']}")
    measured = resolve({**setting["values"], "method": method})
    strategy = _strategy_name(config, device)
    row = next((r for r in rows if r["strategy"] == strategy), None)
    if row is None:
        row = min(rows, key=lambda r: r["ms"]["median"])
        reasons.append(f"strategy {strategy} not measured, {row['strategy']} used")
    if method != config["method"]:
        reasons.append(f"first-order {config['method']} timed as {method}")
    differing = [k for k in TIMING_KEYS if config[k] != measured[k] and not (k == "first_order" and method == "fomaml")]
    if differing:
        reasons.append("differs in " + ", ".join(f"{k}={config[k]}" for k in differing))
    scale = config["meta_batch"] / setting["meta_batch"]
    if scale != 1:
        reasons.append(f"meta-batch {config['meta_batch']} vs {setting['meta_batch']} measured (time x{scale:.2f})")
    episodes = config["test_episodes"] + (config["iterations"] // config["val_every"]) * config["val_episodes"]
    return ProjectedRun(
        key=run.key,
        dataset_setting=f"{run.dataset}/{run.setting}",
        variant=run.variant,
        method=config["method"],
        train_hours=config["iterations"] * row["ms"]["median"] * scale / 3.6e6,
        eval_hours=episodes * row["adapt_ms"]["median"] / 3.6e6,
        basis=f"{setting['key']} {method} [{row['strategy']}]",
        reasons=reasons,
    )


def project_grid(name: str, data: dict[str, Any]) -> tuple[list[ProjectedRun], list[str]]:
    """Projections of every run of a named grid, and the keys of runs that could not be projected."""
    projected, missing = [], []
    for run in load_grid(name).runs:
        p = project_run(run, data)
        if p is None:
            missing.append(run.key)
        else:
            projected.append(p)
    return projected, missing
