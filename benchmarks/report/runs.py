"""The records of one grid as typed runs, checked against the invariants every report relies on.

Invariants (a violation raises RecordError, naming the file and the fix):
- every record is a readable schema-1 record (ResultsStore raises StoreError otherwise);
- status is "done" or "failed", and the record belongs to the grid it is stored under;
- a finished run has test.metric ("accuracy" for classification, "mse" for the sinusoid) and a
  non-empty test.per_episode of finite numbers (accuracies in [0, 1], MSE >= 0) whose length equals
  test.episodes;
- paired runs (same dataset, setting and seed) hold the same number of test episodes from the same
  episode seed: their per-episode lists are the same episodes in the same order;
- no two finished runs share dataset, setting, method, variant and seed (pooling would count one twice).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.data.datasets import DATASETS
from benchmarks.report.labels import dataset_order, method_order, setting_order, variant_order
from benchmarks.runs.store import NOT_RUN_PREFIX, ResultsStore, StoreError

FIX = "delete it and rerun that run"


class RecordError(StoreError):
    """A stored record breaks an invariant of the suite."""


@dataclass(frozen=True)
class Run:
    """One stored record, with the fields the reports use pulled out and checked."""

    run_id: str
    path: Path
    key: str
    status: str
    reason: str | None
    method: str
    dataset: str
    setting: str
    seed: int
    variant: str
    metric: str | None
    reduced: bool
    partial_splits: tuple[str, ...]
    checksum_splits: tuple[str, ...]  # splits read from a source whose published checksum did not match
    cache_only_splits: tuple[str, ...]  # splits served from a cache alone, not checked against source files
    per_episode: np.ndarray = field(compare=False, repr=False)
    record: dict[str, Any] = field(compare=False, repr=False)

    @property
    def config(self) -> dict[str, Any]:
        return self.record.get("config") or {}

    @property
    def timing(self) -> dict[str, Any]:
        return self.record.get("timing") or {}

    @property
    def environment(self) -> dict[str, Any]:
        return self.record.get("environment") or {}

    @property
    def validation_curve(self) -> list[dict[str, Any]]:
        return (self.record.get("validation") or {}).get("curve") or []

    @property
    def best_iteration(self) -> int | None:
        return (self.record.get("validation") or {}).get("best_iteration")

    @property
    def iterations_done(self) -> int | None:
        return (self.record.get("training") or {}).get("iterations_done")

    @property
    def meta_batch(self) -> int | None:
        return self.config.get("meta_batch")

    @property
    def device(self) -> tuple[str, str]:
        """(device kind, device name): timings compare only within one."""
        env = self.environment
        return str(env.get("device", "unknown")), str(env.get("device_name", "unknown"))


def _splits_where(data: Any, test) -> tuple[str, ...]:
    """Names of the data splits whose provenance passes test."""
    if not isinstance(data, dict):
        return ()
    return tuple(sorted(name for name, split in data.items() if isinstance(split, dict) and test(split)))


def _partial(split: dict[str, Any]) -> bool:
    return bool(split.get("partial"))


def _checksum_mismatch(split: dict[str, Any]) -> bool:
    """`checksum` is one state or one per source file (Omniglot's two zips): 'ok', 'mismatch (...)', 'not ...'."""
    checksum = split.get("checksum")
    states = checksum.values() if isinstance(checksum, dict) else [checksum]
    return any(str(state).startswith("mismatch") for state in states)


def _cache_only(split: dict[str, Any]) -> bool:
    return str(split.get("cache", "")).startswith("cache only")


def _per_episode(record: dict[str, Any], path: Path, dataset: str) -> tuple[str, np.ndarray]:
    test = record.get("test")
    if not isinstance(test, dict):
        raise RecordError(f"{path}: finished run without a 'test' section; {FIX}")
    metric = test.get("metric")
    expected = DATASETS[dataset].metric if dataset in DATASETS else None
    if expected is None:
        raise RecordError(f"{path}: unknown dataset {dataset!r}; {FIX}")
    if metric != expected:
        raise RecordError(f"{path}: test.metric is {metric!r}, expected {expected!r} for dataset {dataset!r}; {FIX}")
    values = test.get("per_episode")
    if not isinstance(values, list) or not values:
        raise RecordError(f"{path}: test.per_episode must be a non-empty list of numbers, got {values!r:.80}; {FIX}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise RecordError(f"{path}: test.per_episode holds a value that is not a finite number; {FIX}")
    array = np.asarray(values, dtype=np.float64)
    if metric == "accuracy" and (array.min() < 0 or array.max() > 1):
        raise RecordError(f"{path}: accuracies must lie in [0, 1], found {array.min()}..{array.max()}; {FIX}")
    if metric == "mse" and array.min() < 0:
        raise RecordError(f"{path}: an MSE is negative ({array.min()}); {FIX}")
    episodes = test.get("episodes")
    if episodes is not None and episodes != array.size:
        raise RecordError(f"{path}: test.episodes is {episodes} but test.per_episode holds {array.size} values; {FIX}")
    return metric, array


def parse_run(record: dict[str, Any], path: Path, grid: str) -> Run:
    """A Run from a record that load_record accepted, or a RecordError naming the file."""
    status = record["status"]
    if status not in ("done", "failed"):
        raise RecordError(f"{path}: status {status!r} is neither 'done' nor 'failed'; {FIX}")
    if record.get("grid", grid) != grid:
        raise RecordError(f"{path}: a record of grid {record['grid']!r} is stored under grid {grid!r}; move it")
    seed = record["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RecordError(f"{path}: seed must be an integer, got {seed!r}; {FIX}")
    dataset, config = record["dataset"], record["config"]
    if not isinstance(config, dict):
        raise RecordError(f"{path}: config must be an object, got {type(config).__name__}; {FIX}")
    metric, per_episode = (None, np.empty(0))
    if status == "done":
        metric, per_episode = _per_episode(record, path, dataset)
    training = record.get("training") or {}
    return Run(
        run_id=str(record["run_id"]),
        path=path,
        key=str(record["key"]),
        status=status,
        reason=record.get("reason"),
        method=str(record["method"]),
        dataset=str(dataset),
        setting=str(record["setting"]),
        seed=seed,
        variant=str(record.get("variant") or "default"),
        metric=metric,
        reduced=bool(config.get("reduced") or training.get("reduced")),
        partial_splits=_splits_where(record.get("data"), _partial),
        checksum_splits=_splits_where(record.get("data"), _checksum_mismatch),
        cache_only_splits=_splits_where(record.get("data"), _cache_only),
        per_episode=per_episode,
        record=record,
    )


Cell = dict[int, Run]  # seed -> run, one method variant in one dataset setting


class RunSet:
    """The checked runs of one grid, with the look-ups the tables, claims and figures need."""

    def __init__(self, grid: str, runs: Iterable[Run]):
        self.grid = grid
        ordered = sorted(runs, key=lambda r: (r.run_id, str(r.path)))
        self.done = [r for r in ordered if r.status == "done"]
        self.failed = [r for r in ordered if r.status == "failed"]
        self._cells: dict[tuple[str, str, str, str], Cell] = defaultdict(dict)
        for run in self.done:
            cell = self._cells[(run.dataset, run.setting, run.method, run.variant)]
            if run.seed in cell:
                raise RecordError(
                    f"{run.path} and {cell[run.seed].path}: two finished runs of {run.dataset} {run.setting} "
                    f"{run.method} {run.variant} seed {run.seed}; delete the one that should not count"
                )
            cell[run.seed] = run
        self._check_pairing()

    def _check_pairing(self) -> None:
        first: dict[tuple[str, str, int], Run] = {}
        for run in self.done:
            key = (run.dataset, run.setting, run.seed)
            ref = first.setdefault(key, run)
            if ref.per_episode.size != run.per_episode.size:
                raise RecordError(
                    f"{run.path} and {ref.path}: paired runs ({run.dataset} {run.setting} seed {run.seed}) hold "
                    f"{run.per_episode.size} and {ref.per_episode.size} test episodes; both must be evaluated on the "
                    f"same episodes: delete the wrong one and rerun it"
                )
            seeds = (run.record["test"].get("episode_seed"), ref.record["test"].get("episode_seed"))
            if None not in seeds and seeds[0] != seeds[1]:
                raise RecordError(
                    f"{run.path} and {ref.path}: paired runs ({run.dataset} {run.setting} seed {run.seed}) have "
                    f"episode seeds {seeds[0]!r} and {seeds[1]!r}; delete the wrong one and rerun it"
                )

    # --- look-ups -------------------------------------------------------------------------
    def cell(self, dataset: str, setting: str, method: str, variant: str = "default") -> Cell:
        return dict(self._cells.get((dataset, setting, method, variant), {}))

    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.done}, key=dataset_order)

    def settings(self, dataset: str) -> list[str]:
        return sorted({r.setting for r in self.done if r.dataset == dataset}, key=setting_order)

    def rows(self, dataset: str, setting: str) -> list[tuple[str, str]]:
        """(method, variant) pairs present in a dataset setting, in display order."""
        pairs = {(m, v) for (d, s, m, v) in self._cells if d == dataset and s == setting}
        return sorted(pairs, key=lambda mv: (method_order(mv[0]), variant_order(mv[1])))

    def variants(self, dataset: str, setting: str, method: str) -> list[str]:
        return [v for m, v in self.rows(dataset, setting) if m == method]

    def failure_reason(
        self,
        dataset: str | None = None,
        setting: str | None = None,
        method: str | None = None,
        variant: str | None = None,
    ) -> str | None:
        """The reasons of failed records that match (None: no such record), "not run: ..." ones first:
        when those exist (e.g. "not run: data absent ...") only they are returned."""
        wanted = {"dataset": dataset, "setting": setting, "method": method, "variant": variant}

        def matches(run: Run) -> bool:
            return all(value is None or getattr(run, name) == value for name, value in wanted.items())

        reasons = sorted({str(r.reason or "failed, no reason recorded") for r in self.failed if matches(r)})
        not_run = [r for r in reasons if r.startswith(NOT_RUN_PREFIX)]
        if not_run:
            return "; ".join(not_run)
        return "failed: " + "; ".join(reasons) if reasons else None

    def missing_text(self, what: str, suggest_grid: str) -> str:
        """Why runs that no record mentions are absent: which grid would run them."""
        if suggest_grid == self.grid:
            return f"no {what} runs in grid {self.grid} (not in the grid, or not run yet)"
        return f"no {what} runs in grid {self.grid}: run the {suggest_grid} grid"

    def absent_reason(
        self,
        what: str,
        suggest_grid: str,
        dataset: str | None = None,
        setting: str | None = None,
        method: str | None = None,
        variant: str | None = None,
    ) -> str:
        """Why the runs described by `what` are missing: the failure reason of matching records,
        else which grid would run them."""
        return self.failure_reason(dataset, setting, method, variant) or self.missing_text(what, suggest_grid)


def load_runs(results_dir: Path, grid: str) -> RunSet:
    """Every record of results_dir/grid as a checked RunSet (StoreError/RecordError on a bad one)."""
    store = ResultsStore(results_dir, grid)
    runs = [parse_run(record, store.record_path(str(record["run_id"])), grid) for record in store.records()]
    return RunSet(grid, runs)
