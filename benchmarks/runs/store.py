"""The results store: one JSON record per run under results/<grid>/runs/, written atomically
(temporary file, fsync, rename, fsync of the folder) so that a crash never leaves a half-written
record, and never overwritten by anything but a newer attempt at the same run.

Layout of results/<grid>/:
    runs/<run_id>.json          the record of a finished (status "done") or failed run
    checkpoints/<run_id>.pt     training state of an unfinished run (a checked file: content sha256,
                                tensors and plain values only; deleted once its record is written)
    running/<run_id>.lock       the claim of the process that works on the run (runs/locks.py)

Record schema (version 1), every field written by benchmarks/runs/runner.py:
    schema: 1
    run_id: file-safe unique id; key: human-readable run key, e.g. "omniglot/5w1s/maml/seed0"
    grid, status ("done" | "failed"), reason (null or why it failed)
    method, dataset, setting ("5w1s", "sinusoid-10shot"), seed, variant (ablation name or "default")
    config: the full resolved config; overrides: the grid values that define the variant
    assumptions: list of assumption ids in force (docs/methods.md)
    environment: device, device_name, torch, python, platform, git_revision, git_dirty, strategy
    data: provenance of every split used (counts, partial splits, cache fingerprint)
    test: metric ("accuracy" | "mse"), episodes, per_episode [floats], mean, ci95, std,
          episode_seed (test episodes are a function of (seed, setting, index) only)
    validation: curve [{iteration, metric, loss}], best_iteration, best_metric, selection
    training: iterations_done, reduced (bool), train_loss_curve [{iteration, loss}]
    timing: meta_iteration_ms_median, adaptation_ms_per_episode, train_seconds, peak_memory_mb
    faults: jitter_retries, solve_failures, recovered [text], resumed_from_iteration
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common.files import atomic_write_json, is_plain_name, remove_orphan_temporaries

SCHEMA_VERSION = 1
NOT_RUN_PREFIX = "not run: "  # reason of a failed record whose run could not start (data absent ...)


class StoreError(RuntimeError):
    """A malformed or unreadable record."""


class ResultsStore:
    """results/<grid>/: records, checkpoints and running markers of one grid.

    Opening a store deletes the temporary files that interrupted atomic writes left in its folders
    (common/files.remove_orphan_temporaries: only `.<name>.XXXXXXXX.tmp` files older than a minute)."""

    def __init__(self, root: Path, grid: str):
        if not is_plain_name(grid):
            raise StoreError(f"grid name {grid!r} is not a plain name (letters, digits, '-', '_', '.' not leading)")
        self.root = Path(root) / grid
        self.grid = grid
        for folder in (self.runs_dir, self.root / "checkpoints", self.root / "running"):
            remove_orphan_temporaries(folder)

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def record_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def checkpoint_path(self, run_id: str) -> Path:
        return self.root / "checkpoints" / f"{run_id}.pt"

    def running_path(self, run_id: str) -> Path:
        return self.root / "running" / f"{run_id}.lock"

    def write_record(self, record: dict[str, Any]) -> Path:
        if record.get("schema") != SCHEMA_VERSION or "run_id" not in record:
            raise StoreError(f"refusing to store a record without schema {SCHEMA_VERSION} and run_id")
        path = self.record_path(record["run_id"])
        atomic_write_json(path, record)
        return path

    def read_record(self, run_id: str) -> dict[str, Any] | None:
        path = self.record_path(run_id)
        if not path.exists():
            return None
        return load_record(path)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every stored record, in file-name order (so reports are deterministic)."""
        if not self.runs_dir.exists():
            return
        for path in sorted(self.runs_dir.glob("*.json")):
            yield load_record(path)


def load_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"{path}: unreadable result record ({e}); delete it to rerun that run") from e
    if not isinstance(record, dict) or record.get("schema") != SCHEMA_VERSION:
        raise StoreError(f"{path}: not a schema-{SCHEMA_VERSION} result record; delete it to rerun that run")
    missing = [
        k for k in ("run_id", "key", "status", "method", "dataset", "setting", "seed", "config") if k not in record
    ]
    if missing:
        raise StoreError(f"{path}: result record lacks {', '.join(missing)}; delete it to rerun that run")
    return record
