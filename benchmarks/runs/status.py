"""The status of every run of a grid in a results store: done, failed (why), running (where),
interrupted (resumable from its checkpoint), pending, or in conflict with a stored record."""

from __future__ import annotations

import json
import os
import socket

from benchmarks.runs.grids import Grid, RunSpec
from benchmarks.runs.store import ResultsStore, StoreError


def run_status(store: ResultsStore, spec: RunSpec) -> tuple[str, str]:
    """(status, detail): done / failed / running / interrupted / pending."""
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
        return "failed", record.get("reason") or ""
    marker = store.running_path(spec.run_id)
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("host") == socket.gethostname() and _pid_alive(info.get("pid", -1)):
            return "running", f"pid {info['pid']}"
    if store.checkpoint_path(spec.run_id).exists():
        return "interrupted", "resumes from its checkpoint"
    return "pending", ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def runs_to_do(grid: Grid, store: ResultsStore) -> tuple[list[RunSpec], list[str]]:
    """Runs that are not done (failed ones are retried), and conflicts that block the grid."""
    todo, conflicts = [], []
    for spec in grid.runs:
        status, detail = run_status(store, spec)
        if status == "conflict":
            conflicts.append(f"{spec.key}: {detail}")
        elif status not in ("done", "running"):
            todo.append(spec)
    return todo, conflicts
