"""`python -m benchmarks run` and `list`: expand a grid, skip finished runs, hand the rest to an
executor, and say what happened.

Exit codes of `run`: 0 when every run it ran finished (or was submitted); 1 when any failed, the last
line saying how many; 2 when the grid cannot be run at all (bad grid or settings, conflicting results)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchmarks.runs import executors
from benchmarks.runs.config import ConfigError, parse_assignments
from benchmarks.runs.context import RunContext
from benchmarks.runs.executors import ExecutorOptions
from benchmarks.runs.grids import Grid, RunSpec, load_grid
from benchmarks.runs.status import run_status, runs_to_do
from benchmarks.runs.store import ResultsStore, StoreError


def _grid(name: str, assignments: list[str], only: str | None) -> Grid | None:
    """The grid with its --set overrides, or None after printing why it cannot be loaded."""
    try:
        return load_grid(name, parse_assignments(assignments), only)
    except (ConfigError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def list_runs(grid_name: str, assignments: list[str], only: str | None, results: Path) -> int:
    """Every run of a grid with its status."""
    grid = _grid(grid_name, assignments, only)
    if grid is None:
        return 2
    store = ResultsStore(results, grid.name)
    counts: dict[str, int] = {}
    width = max((len(r.key) for r in grid.runs), default=10)
    for spec in grid.runs:
        status, detail = run_status(store, spec)
        counts[status] = counts.get(status, 0) + 1
        print(f"{spec.key.ljust(width)}  {status:<11}  {detail}")
    print(f"\n{len(grid.runs)} runs in grid {grid.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


def _print_reasons(store: ResultsStore, specs: list[RunSpec]) -> None:
    """Why the runs that did not finish failed, each reason once with the runs it stopped."""
    reasons: dict[str, list[str]] = {}
    for spec in specs:
        try:
            record = store.read_record(spec.run_id)
        except StoreError as e:
            reasons.setdefault(str(e), []).append(spec.key)
            continue
        if record is not None and record["status"] != "done":
            reasons.setdefault(record["reason"] or "no reason recorded", []).append(spec.key)
    for reason, keys in reasons.items():
        runs = keys[0] if len(keys) == 1 else f"{len(keys)} runs ({keys[0]}, ...)"
        print(f"  {runs}: {reason}")


def run_grid(
    grid_name: str, assignments: list[str], only: str | None, context: RunContext, options: ExecutorOptions
) -> int:
    """Run every unfinished run of a grid with the executor `options` name."""
    grid = _grid(grid_name, assignments, only)
    if grid is None:
        return 2
    store = ResultsStore(context.results, grid.name)
    todo, conflicts = runs_to_do(grid, store)
    if conflicts:
        print("error: results already stored with a different config:\n  " + "\n  ".join(conflicts), file=sys.stderr)
        return 2
    done = len(grid.runs) - len(todo)
    print(f"grid {grid.name}: {len(grid.runs)} runs, {done} already done, {len(todo)} to run; results in {store.root}")
    statuses = executors.execute(todo, context, options)
    counts: dict[str, Any] = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"\nfinished: {', '.join(f'{n} {s}' for s, n in counts.items()) or 'nothing to do'}; results in {store.root}")
    _print_reasons(store, todo)
    print(f"see `python -m benchmarks list --grid {grid_name}` and `python -m benchmarks report --grid {grid.name}`")
    failed = statuses.count("failed")
    if failed:
        print(f"{failed} of {len(todo)} runs failed (grid {grid.name}); their reasons are above")
        return 1
    if not todo:
        print(f"nothing to run in grid {grid.name}: each of its {len(grid.runs)} runs is done or running")
    else:
        print(f"all {len(todo)} runs {'submitted' if 'submitted' in statuses else 'finished'} (grid {grid.name})")
    return 0
