"""The status of every run of a grid in a results store: done, failed (why), running (where: a live
lock, runs/locks.py), interrupted (resumable from its checkpoint), pending, or in conflict with a
stored record or with a live run of another config."""

from __future__ import annotations

from benchmarks.runs.grids import Grid, RunSpec
from benchmarks.runs.locks import lock_status, stale_lock
from benchmarks.runs.store import ResultsStore, StoreError


def run_status(store: ResultsStore, spec: RunSpec) -> tuple[str, str]:
    """(status, detail): done / failed / running / interrupted / pending / conflict."""
    try:
        record = store.read_record(spec.run_id)
    except StoreError as e:
        return "failed", str(e)
    if record is not None:
        if record["config"] != spec.config:
            return "conflict", "stored with a different config: use another --results folder or delete the record"
        if record["status"] == "done":
            test = record["test"]
            ci = "" if test["ci95"] is None else f" +- {test['ci95']:.4f}"
            return "done", f"{test['metric']} {test['mean']:.4f}{ci}"
    live = lock_status(store, spec.run_id, spec.config)
    if live is not None:
        return live
    if record is not None:
        return "failed", record.get("reason") or ""
    stale = stale_lock(store, spec.run_id)
    stale = f" (stale lock of {stale}: taken over by the next run)" if stale else ""
    if store.checkpoint_path(spec.run_id).exists():
        return "interrupted", "resumes from its checkpoint" + stale
    return "pending", stale.strip(" ()")


def runs_to_do(grid: Grid, store: ResultsStore) -> tuple[list[RunSpec], list[str]]:
    """Runs that are not done (failed ones are retried), and conflicts that block the grid. Runs that
    another process is running stay in the list: their claim fails ("busy") and they are looked at
    again at the end, so that a run whose holder died meanwhile is resumed."""
    todo, conflicts = [], []
    for spec in grid.runs:
        status, detail = run_status(store, spec)
        if status == "conflict":
            conflicts.append(f"{spec.key}: {detail}")
        elif status != "done":
            todo.append(spec)
    return todo, conflicts
