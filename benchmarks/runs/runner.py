"""One run, start to record: `run_one` is the unit of work every executor calls (in-process,
worker processes, submitit-local, SLURM). It claims the run (runs/locks.py: one process per run),
loads the data the run needs, trains (resuming from a checkpoint), tests and writes the run's record
atomically; a run that cannot finish is recorded as failed with why, and one stopped by a deadline
or a signal is left checkpointed (interrupted)."""

from __future__ import annotations

import math
import statistics
import sys
import traceback
from typing import Any

import torch

from benchmarks.device.environment import environment, resolve_device
from benchmarks.device.heap import retain_freed_memory
from benchmarks.runs.assumptions import assumptions_in_force
from benchmarks.runs.config import ConfigError
from benchmarks.runs.context import RunContext
from benchmarks.runs.grids import RunSpec
from benchmarks.runs.interrupt import CONTROL, Interrupted
from benchmarks.runs.locks import LockBusy, RunLock, record_fingerprint
from benchmarks.runs.store import NOT_RUN_PREFIX, SCHEMA_VERSION, ResultsStore, StoreError


def _sources(spec: RunSpec, context: RunContext, device: torch.device) -> dict[str, Any]:
    from benchmarks.data import task_source

    return {
        split: task_source(spec.config, split, context.data_root, context.cache_dir, device, context.progress)
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
    return {**base_record(spec), "status": "failed", "reason": reason, **json_safe(extra or {})}


def json_safe(value: Any) -> Any:
    """value with every non-finite float replaced by its name ('nan', 'inf', '-inf'): records are strict
    JSON, and a failed run's diagnostics are exactly where such numbers turn up."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class RecordNotWritten(RuntimeError):
    """The record of a run could not be written (full disk, read-only folder): the run has no result yet."""


#: run_one's `planned` when the caller made no plan: a failed record found at claim time is retried.
UNPLANNED = "unplanned"


def claim(store: ResultsStore, spec: RunSpec, planned: str | None) -> tuple[RunLock | None, str, str]:
    """Claim a run before training it: (lock, "", "") or (None, status, why not).

    Not claimed: "busy" (a live process holds it), "conflict" (held or stored with another config),
    "elsewhere" (another process wrote its record since `planned`, the record's fingerprint when the
    run was planned: a done record always, a failed one that is not the planned one)."""
    try:
        lock = RunLock.acquire(store, spec.key, spec.run_id, spec.config)
    except LockBusy as e:
        if not e.same_config:
            return None, "conflict", f"{e.holder.describe()} is running it with a different config"
        return None, "busy", str(e)
    try:
        record = store.read_record(spec.run_id)
    except StoreError:
        record = None  # an unreadable record is replaced by this attempt (status.py lists it as failed)
    if record is not None:
        why = None
        if record["config"] != spec.config:
            lock.release()
            return None, "conflict", "stored with a different config"
        if record["status"] == "done":
            why = "done by another process"
        elif planned != UNPLANNED and record_fingerprint(store, spec.run_id) != planned:
            why = "attempted by another process since this command started"
        if why:
            lock.release()
            return None, "elsewhere", why
    return lock, "", ""


def run_one(spec: RunSpec, context: RunContext, planned: str | None = UNPLANNED) -> str:
    """Claim, train, test and store one run. Returns its status: "done" or "failed" (trained here;
    "failed" too when no record could be written: the reason is printed and the checkpoint kept),
    "interrupted" (stopped at the deadline or by a signal, checkpointed), or, when it was not
    trained here, "busy", "conflict" or "elsewhere" (see `claim`)."""
    try:
        return _run_one(spec, context, planned)
    except RecordNotWritten as e:
        print(f"[failed] {spec.key}: {e}", file=sys.stderr)
        return "failed"


def _run_one(spec: RunSpec, context: RunContext, planned: str | None) -> str:
    from benchmarks.data import DataError
    from benchmarks.runs.trainer import RunFailure, Trainer

    store = ResultsStore(context.results, spec.grid)
    device = resolve_device(context.device)
    threads = context.threads
    if threads or device.type == "cpu":
        # One thread by default on the CPU: the per-task tensors are small, and threads that wait on
        # each other for a shared core are far slower than one (reports/perf/NOTES.md, "Defaults in the code").
        torch.set_num_threads(threads or 1)
    retain_freed_memory()  # time only (device/heap.py); recorded in the environment
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    lock, status, why = claim(store, spec, planned)
    if lock is None:
        print(f"[{status}] {spec.key}: {why}", file=sys.stderr)
        return status
    if lock.took_over:
        print(f"[resume] {spec.key}: {lock.took_over}", file=sys.stderr)
    trainer = None
    try:
        try:
            sources = _sources(spec, context, device)
        except DataError as e:
            fix = (
                f"The data root is {context.data_root}: point --data-root (or $AMFS_DATA_ROOT) at the folder "
                "that holds the dataset; `python -m benchmarks data check` shows what it finds there"
            )
            reason = f"{NOT_RUN_PREFIX}data absent or unusable: {str(e).rstrip('.')}. {fix}"
            _write(store, lock, failed_record(spec, reason))
            print(f"[not run] {spec.key}: data absent or unusable (the reason is at the end)", file=sys.stderr)
            return "failed"
        trainer = Trainer(spec, sources, device, store.checkpoint_path(spec.run_id), context.progress)
        CONTROL.deadline = context.deadline
        trainer.interrupt = CONTROL.poll
        lock.progress = lambda: trainer.state.iteration
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
        if not _write(store, lock, record):
            return "elsewhere"
        # only once the record is durably written (atomic_write_json fsyncs it and its folder)
        store.checkpoint_path(spec.run_id).unlink(missing_ok=True)
        return "done"
    except Interrupted as e:
        print(f"[interrupted] {spec.key}: {e}", file=sys.stderr)
        return "interrupted"
    except (RunFailure, DataError, torch.cuda.OutOfMemoryError, ConfigError, ValueError, RuntimeError) as e:
        if isinstance(e, RecordNotWritten):
            raise
        reason = f"{type(e).__name__}: {e}"
        extra: dict[str, Any] = {}
        if trainer is not None:
            extra["faults"] = {
                "jitter_retries": trainer.state.jitter_retries,
                "failed_at": trainer.state.iteration,
                "recovered": trainer.state.recovered,
                "resumed_from_iteration": trainer.state.resumed_from,
            }
        _write(store, lock, failed_record(spec, reason, extra))
        print(f"[failed] {spec.key}: {reason}", file=sys.stderr)
        if not isinstance(e, (RunFailure, DataError, torch.cuda.OutOfMemoryError)):
            traceback.print_exc()
        return "failed"
    finally:
        lock.release()


def _write(store: ResultsStore, lock: RunLock, record: dict[str, Any]) -> bool:
    """Write the record if this process still holds the run's lock (a holder judged stale and taken
    over by another process must not overwrite that process's work); False otherwise."""
    if not lock.verify():
        print(f"[lost] {record['key']}: its lock was taken over; record not written", file=sys.stderr)
        return False
    try:
        store.write_record(record)
    except OSError as e:
        checkpoint = store.checkpoint_path(record["run_id"])
        kept = (
            f"its checkpoint {checkpoint} is kept, so the next run of the grid tests it again without retraining"
            if checkpoint.exists()
            else "no checkpoint of it exists"
        )
        raise RecordNotWritten(
            f"cannot write the {record['status']} record {store.record_path(record['run_id'])} ({e}); {kept}: "
            "free space or fix the folder, then run the grid again"
        ) from e
    return True
