"""A tiny sinusoid grid (no files needed) and the CLI calls the harness tests make with it."""

from __future__ import annotations

from pathlib import Path

from benchmarks.cli import main
from benchmarks.runs.store import ResultsStore

GRID = """
description = "test grid"
methods = [{methods}]
seeds = [0]
[defaults]
dataset = "sinusoid"
meta_batch = 4
iterations = {iterations}
val_every = {val_every}
checkpoint_every = {checkpoint_every}
val_episodes = 10
test_episodes = 20
[[setting]]
k_shot = 5
"""

# Fields that depend on the wall clock or on how the run was carried out, not on what it computed.
NONDETERMINISTIC = {"timing", "environment", "faults"}


def write_grid(tmp_path: Path, name: str = "tiny", methods=("maml", "i-amfs"), iterations=30, **kw) -> Path:
    text = GRID.format(
        methods=", ".join(f'"{m}"' for m in methods),
        iterations=iterations,
        val_every=kw.get("val_every", 10),
        checkpoint_every=kw.get("checkpoint_every", 10),
    )
    path = tmp_path / f"{name}.toml"
    path.write_text(text + kw.get("extra", ""))
    return path


def run_cli(grid: Path, results: Path, *extra: str) -> int:
    return main(["run", "--grid", str(grid), "--results", str(results), "--no-progress", "--threads", "1", *extra])


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in NONDETERMINISTIC}


def records(results: Path, grid: str) -> dict[str, dict]:
    return {r["key"]: r for r in ResultsStore(results, grid).records()}
