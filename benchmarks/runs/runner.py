"""Running a grid: skip finished runs, resume interrupted ones, record failures and go on.

`run_one` is the unit of work every executor calls (in-process, submitit-local, SLURM): it loads
the data a run needs, trains, tests and writes the run's record atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from benchmarks.common.files import atomic_write_json
from benchmarks.device.environment import environment, resolve_device
from benchmarks.device.heap import retain_freed_memory
from benchmarks.runs.assumptions import assumptions_in_force
from benchmarks.runs.config import ConfigError, parse_assignments
from benchmarks.runs.grids import Grid, RunSpec, load_grid
from benchmarks.runs.store import NOT_RUN_PREFIX, SCHEMA_VERSION, ResultsStore, StoreError


def _sources(spec: RunSpec, data_root: Path, cache_dir: Path, device: torch.device, progress: bool) -> dict[str, Any]:
    from benchmarks.data import task_source

    return {
        split: task_source(spec.config, split, data_root, cache_dir, device, progress)
        for split in ("train", "val", "test")
    }


def base_record(spec: RunSpec) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "run_id": spec.run_id,
        "key": spec.key,
        "grid": spec.grid,
        "method": spec.method,
        "dataset": spec.dataset,
        "setting": spec.setting,
        "seed": spec.seed,
        "variant": spec.variant,
        "config": spec.config,
        "overrides": spec.overrides,
        "assumptions": assumptions_in_force(spec.config),
    }


def failed_record(spec: RunSpec, reason: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**base_record(spec), "status": "failed", "reason": reason, **(extra or {})}


def run_one(
    spec: RunSpec,
    results: Path,
    data_root: Path,
    cache_dir: Path,
    device_name: str,
    progress: bool,
    threads: int | None = None,
) -> str:
    """Train, test and store one run. Returns its final status ("done" or "failed")."""
    from benchmarks.data import DataError
    from benchmarks.runs.trainer import RunFailure, Trainer

    store = ResultsStore(results, spec.grid)
    device = resolve_device(device_name)
    if threads or device.type == "cpu":
        # One thread by default on the CPU: the per-task tensors are small, and two OpenMP threads
        # on a two-core machine with anything else running were measured 25x slower than one.
        torch.set_num_threads(threads or 1)
    retain_freed_memory()  # time only (benchmarks/device/heap.py); recorded in the environment
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    marker = store.running_path(spec.run_id)
    atomic_write_json(marker, {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
    trainer = None
    try:
        try:
            sources = _sources(spec, data_root, cache_dir, device, progress)
        except DataError as e:
            store.write_record(failed_record(spec, f"{NOT_RUN_PREFIX}data absent or unusable: {e}"))
            return "failed"
        trainer = Trainer(spec, sources, device, store.checkpoint_path(spec.run_id), progress)
        _CURRENT[0] = trainer
        trainer.try_resume()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        trainer.train()
        test = trainer.test()
        state = trainer.state
        record = {
            **base_record(spec),
            "status": "done",
            "reason": None,
            "environment": {**environment(device), "execution": trainer.execution.as_dict()},
            "data": {split: src.provenance for split, src in sources.items()},
            "test": {k: v for k, v in test.items() if k != "adaptation_ms_per_episode"},
            "validation": {
                "curve": state.val_curve,
                "best_iteration": state.best_iteration,
                "best_metric": state.best_metric,
                "selection": "max validation accuracy" if test["metric"] == "accuracy" else "min validation MSE",
            },
            "training": {
                "iterations_done": state.iteration,
                "reduced": spec.config["reduced"],
                "train_loss_curve": state.train_loss_curve,
            },
            "timing": {
                "meta_iteration_ms_median": statistics.median(state.iteration_ms) if state.iteration_ms else None,
                "adaptation_ms_per_episode": test["adaptation_ms_per_episode"],
                "train_seconds": state.train_seconds,
                "peak_memory_mb": trainer.peak_memory_mb(),
            },
            "faults": {
                "jitter_retries": state.jitter_retries,
                "solve_failures": 0,
                "recovered": state.recovered,
                "resumed_from_iteration": state.resumed_from,
            },
        }
        store.write_record(record)
        store.checkpoint_path(spec.run_id).unlink(missing_ok=True)
        return "done"
    except (RunFailure, torch.cuda.OutOfMemoryError, ConfigError, ValueError, RuntimeError) as e:
        reason = f"{type(e).__name__}: {e}"
        extra = {}
        if trainer is not None:
            extra["faults"] = {"jitter_retries": trainer.state.jitter_retries, "failed_at": trainer.state.iteration}
        store.write_record(failed_record(spec, reason, extra))
        print(f"[failed] {spec.key}: {reason}", file=sys.stderr)
        if not isinstance(e, (RunFailure, torch.cuda.OutOfMemoryError)):
            traceback.print_exc()
        return "failed"
    finally:
        _CURRENT[0] = None
        marker.unlink(missing_ok=True)


# The trainer running in this process, so a preemption signal handler can checkpoint it.
_CURRENT: list[Any] = [None]


def checkpoint_current() -> None:
    if _CURRENT[0] is not None:
        _CURRENT[0].save_checkpoint()


# --- statuses ------------------------------------------------------------------------------
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


# --- commands ------------------------------------------------------------------------------
def list_command(args: argparse.Namespace) -> int:
    try:
        grid = load_grid(args.grid, parse_assignments(args.set), args.only)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    store = ResultsStore(Path(args.results), grid.name)
    counts: dict[str, int] = {}
    width = max((len(r.key) for r in grid.runs), default=10)
    for spec in grid.runs:
        status, detail = run_status(store, spec)
        counts[status] = counts.get(status, 0) + 1
        print(f"{spec.key.ljust(width)}  {status:<11}  {detail}")
    print(f"\n{len(grid.runs)} runs in grid {grid.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


def run_command(args: argparse.Namespace, data_root: Path, cache_dir: Path) -> int:
    try:
        grid = load_grid(args.grid, parse_assignments(args.set), args.only)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = Path(args.results)
    store = ResultsStore(results, grid.name)
    todo, conflicts = runs_to_do(grid, store)
    if conflicts:
        print("error: results already stored with a different config:\n  " + "\n  ".join(conflicts), file=sys.stderr)
        return 2
    done = len(grid.runs) - len(todo)
    print(f"grid {grid.name}: {len(grid.runs)} runs, {done} already done, {len(todo)} to run; results in {store.root}")
    from benchmarks.runs import executors

    statuses = executors.execute(todo, args, results, data_root, cache_dir)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"\nfinished: {', '.join(f'{n} {s}' for s, n in counts.items()) or 'nothing to do'}; results in {store.root}")
    for spec in todo:
        record = store.read_record(spec.run_id)
        if record is not None and record["status"] != "done":
            print(f"  {spec.key}: {record['reason']}")
    print(f"see `python -m benchmarks list --grid {args.grid}` and `python -m benchmarks report --grid {args.grid}`")
    return 0


def grid_progress(total: int, disable: bool) -> tqdm:
    return tqdm(total=total, desc="grid", unit="run", disable=disable, dynamic_ncols=True)
