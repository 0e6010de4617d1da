"""Executors run the specs of a grid: in this process (local), as local subprocess jobs through
submitit (submitit-local), or as SLURM jobs through submitit (slurm). All call runner.run_one."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.runs.grids import RunSpec
from benchmarks.runs.runner import checkpoint_current, grid_progress, run_one


class RunJob:
    """A picklable call of run_one. On preemption or timeout submitit calls `checkpoint`: the
    running trainer saves its state and the same job is requeued, resuming from that state."""

    def __init__(
        self, spec: RunSpec, results: Path, data_root: Path, cache_dir: Path, device: str, threads: int | None
    ):
        self.args = (spec, results, data_root, cache_dir, device, threads)

    def __call__(self) -> str:
        spec, results, data_root, cache_dir, device, threads = self.args
        return run_one(spec, results, data_root, cache_dir, device, progress=False, threads=threads)

    def checkpoint(self):
        import submitit

        checkpoint_current()
        return submitit.helpers.DelayedSubmission(self)


def execute(
    todo: list[RunSpec], args: argparse.Namespace, results: Path, data_root: Path, cache_dir: Path
) -> list[str]:
    """Run every spec; returns their statuses in order."""
    progress = not args.no_progress
    if args.executor == "local":
        statuses = []
        bar = grid_progress(len(todo), disable=not progress)
        for spec in todo:
            statuses.append(run_one(spec, results, data_root, cache_dir, args.device, progress, args.threads))
            bar.update(1)
        bar.close()
        return statuses
    return _submitit(todo, args, results, data_root, cache_dir)


def _submitit(
    todo: list[RunSpec], args: argparse.Namespace, results: Path, data_root: Path, cache_dir: Path
) -> list[str]:
    try:
        import submitit
    except ImportError as e:
        raise SystemExit("the submitit executors need submitit: pip install 'amfs-bench[cluster]'") from e
    if not todo:
        return []
    folder = results / todo[0].grid / "jobs"
    cluster = "local" if args.executor == "submitit-local" else "slurm"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = {"timeout_min": args.time, "name": f"amfs-{todo[0].grid}"}
    if cluster == "slurm":
        params.update(
            slurm_partition=args.partition,
            gpus_per_node=args.gpus,
            slurm_array_parallelism=args.array_parallelism,
            cpus_per_task=8,
        )
        if args.partition is None:
            params.pop("slurm_partition")
    executor.update_parameters(**params)
    device = args.device if cluster == "local" or args.device != "auto" else "cuda"
    jobs = executor.submit_array(
        [
            RunJob(spec, results.resolve(), data_root.resolve(), cache_dir.resolve(), device, args.threads)
            for spec in todo
        ]
    )
    print(f"submitted {len(jobs)} {cluster} jobs; logs in {folder}")
    if cluster == "slurm" and not args.wait:
        ids = ", ".join(j.job_id for j in jobs)
        print(f"jobs: {ids}; follow them with `python -m benchmarks list --grid {todo[0].grid}`")
        return ["submitted"] * len(jobs)
    statuses = []
    bar = grid_progress(len(jobs), disable=args.no_progress)
    for job in jobs:
        try:
            statuses.append(job.result())
        except Exception as e:  # a job that died: its run is pending/failed in the store
            print(f"job {job.job_id} failed: {e}")
            statuses.append("failed")
        bar.update(1)
    bar.close()
    return statuses
