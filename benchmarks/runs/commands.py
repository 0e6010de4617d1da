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
from benchmarks.runs.locks import record_fingerprint
from benchmarks.runs.slurm import CannotStart, queued_jobs
from benchmarks.runs.status import run_status, runs_to_do
from benchmarks.runs.store import ResultsStore, StoreError

WAITING = ("pending", "interrupted")  # statuses a queued SLURM job may be about to change


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
    statuses = [run_status(store, spec) for spec in grid.runs]
    waiting = [s.run_id for s, (status, _) in zip(grid.runs, statuses, strict=True) if status in WAITING]
    queued = queued_jobs(store, waiting)  # runs submitted to SLURM and not started yet: their job's state
    for spec, (status, detail) in zip(grid.runs, statuses, strict=True):
        if spec.run_id in queued:
            status, detail = "queued", f"{queued[spec.run_id]}; {detail}".rstrip("; ")
        counts[status] = counts.get(status, 0) + 1
        print(f"{spec.key.ljust(width)}  {status:<11}  {detail}")
    print(f"\n{len(grid.runs)} runs in grid {grid.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


def _print_reasons(results: Path, specs: list[RunSpec]) -> None:
    """Why the runs that did not finish failed, each reason once with the runs it stopped."""
    reasons: dict[str, list[str]] = {}
    for spec in specs:
        try:
            record = ResultsStore(results, spec.grid).read_record(spec.run_id)
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
        print("error: runs stored or running with a different config:\n  " + "\n  ".join(conflicts), file=sys.stderr)
        return 2
    done = len(grid.runs) - len(todo)
    print(f"grid {grid.name}: {len(grid.runs)} runs, {done} already done, {len(todo)} to run; results in {store.root}")
    code, last = execute_todo(todo, context, options, f"grid {grid.name}")
    print(f"see `python -m benchmarks list --grid {grid_name}` and `python -m benchmarks report --grid {grid.name}`")
    if last:
        print(last)
    elif not todo:
        print(f"nothing to run in grid {grid.name}: each of its {len(grid.runs)} runs is done or running")
    return code


def execute_todo(
    todo: list[RunSpec], context: RunContext, options: ExecutorOptions, what: str = "the runs"
) -> tuple[int, str | None]:
    """Execute runs (of one grid or several, `what` naming them) and print what happened. Returns
    the exit code and the line to print last: 0 when every run started finished (or, under a budget,
    was checkpointed: runs/budget.py), 1 when one failed."""
    planned = {spec.run_id: record_fingerprint(ResultsStore(context.results, spec.grid), spec.run_id) for spec in todo}
    try:
        plan = executors.local_plan(context, options) if options.kind == "local" else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2, None
    if plan is not None:
        workers, budget = plan
        if workers > 1:
            print(f"{workers} workers, each run in its own process")
        if budget is not None:
            print(budget.summary(todo, context.results))
    try:
        outcomes = executors.execute(todo, context, options, planned, plan)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2, None
    except CannotStart as e:
        return 1, f"gave up: {e}"
    statuses = [o.status for o in outcomes]
    counts: dict[str, Any] = {s: statuses.count(s) for s in sorted(set(statuses))}
    said = ", ".join(f"{n} {s}" for s, n in counts.items()) or "nothing to do"
    print(f"\nfinished: {said}; results in {context.results}")
    _print_reasons(context.results, [o.spec for o in outcomes if o.status in ("failed", "crashed")])
    for outcome in outcomes:
        if outcome.status in ("busy", "conflict"):
            spec = outcome.spec
            print(f"  {spec.key}: {run_status(ResultsStore(context.results, spec.grid), spec)[1]}")
    failed = counts.get("failed", 0) + counts.get("crashed", 0)
    code = 1 if failed else 0
    if plan is None or plan[1] is None:
        if failed:
            return 1, f"{failed} of {len(todo)} runs failed ({what}); their reasons are above"
        verb = "submitted" if "submitted" in statuses else "finished"
        return 0, (f"all {len(todo)} runs {verb} ({what})" if todo else None)
    parts = [
        f"{counts.get('done', 0)} done",
        f"{counts.get('interrupted', 0)} interrupted (resume with the same command)",
    ]
    parts.append(f"{counts.get('pending', 0)} pending")
    if failed:
        parts.append(f"{failed} failed")
    elsewhere = counts.get("busy", 0) + counts.get("elsewhere", 0)
    if elsewhere:
        parts.append(f"{elsewhere} held or finished by another process")
    if todo and counts.get("pending", 0) == len(todo):
        # Nothing could start: say what the shortest start needs, rather than loop for ever.
        budget = plan[1]
        least = min(todo, key=lambda s: budget.estimate(s, context.results).progress_chunk())
        need = budget.estimate(least, context.results).progress_chunk() + budget.reserve_s
        return 1, (
            f"budget spent: 0 done, 0 interrupted, {len(todo)} pending: no run can reach a checkpoint in "
            f"{budget.minutes:g} min; the shortest needs about {need:.0f} s ({least.key})"
        )
    if counts.get("interrupted", 0) or counts.get("pending", 0):
        return code, "budget spent: " + ", ".join(parts)
    return code, "finished within the budget: " + ", ".join(parts)
