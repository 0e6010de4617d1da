"""Executors run the specs of a grid: in this process (local), as local subprocess jobs through
submitit (submitit-local), or as SLURM jobs through submitit (slurm). All call runner.run_one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tqdm import tqdm

from benchmarks.runs.context import RunContext
from benchmarks.runs.grids import RunSpec
from benchmarks.runs.runner import checkpoint_current, run_one

EXECUTORS = ("local", "submitit-local", "slurm")


@dataclass(frozen=True)
class ExecutorOptions:
    """Which executor runs a grid, and what a cluster job asks for."""

    kind: str = "local"  # local | submitit-local | slurm
    partition: str | None = None  # SLURM partition (the cluster's default when None)
    gpus: int = 1  # GPUs per SLURM job
    time_min: int = 240  # time limit per job, minutes
    array_parallelism: int = 16  # SLURM jobs running at once
    wait: bool = False  # slurm: wait for the jobs instead of returning at once


class RunJob:
    """A picklable call of run_one. On preemption or timeout submitit calls `checkpoint`: the
    running trainer saves its state and the same job is requeued, resuming from that state."""

    def __init__(self, spec: RunSpec, context: RunContext):
        self.spec = spec
        self.context = context

    def __call__(self) -> str:
        return run_one(self.spec, self.context)

    def checkpoint(self):
        import submitit

        checkpoint_current()
        return submitit.helpers.DelayedSubmission(self)


def grid_progress(total: int, disable: bool) -> tqdm:
    return tqdm(total=total, desc="grid", unit="run", disable=disable, dynamic_ncols=True)


def execute(todo: list[RunSpec], context: RunContext, options: ExecutorOptions) -> list[str]:
    """Run every spec; returns their statuses in order."""
    if options.kind == "local":
        statuses = []
        bar = grid_progress(len(todo), disable=not context.progress)
        for i, spec in enumerate(todo, start=1):
            statuses.append(run_one(spec, context))
            bar.update(1)
            if not context.progress:  # a line per run where there is no bar (a log file, CI)
                print(f"[{i}/{len(todo)}] {spec.key}: {statuses[-1]}", flush=True)
        bar.close()
        return statuses
    return _submitit(todo, context, options)


def _submitit(todo: list[RunSpec], context: RunContext, options: ExecutorOptions) -> list[str]:
    try:
        import submitit
    except ImportError as e:
        raise SystemExit("the submitit executors need submitit: pip install 'amfs-bench[cluster]'") from e
    if not todo:
        return []
    folder = context.results / todo[0].grid / "jobs"
    cluster = "local" if options.kind == "submitit-local" else "slurm"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = {"timeout_min": options.time_min, "name": f"amfs-{todo[0].grid}"}
    if cluster == "slurm":
        params.update(
            slurm_partition=options.partition,
            gpus_per_node=options.gpus,
            slurm_array_parallelism=options.array_parallelism,
            cpus_per_task=8,
        )
        if options.partition is None:
            params.pop("slurm_partition")
    executor.update_parameters(**params)
    device = context.device if cluster == "local" or context.device != "auto" else "cuda"
    job_context = dataclasses.replace(context.absolute(), device=device, progress=False)
    jobs = executor.submit_array([RunJob(spec, job_context) for spec in todo])
    print(f"submitted {len(jobs)} {cluster} jobs; logs in {folder}")
    if cluster == "slurm" and not options.wait:
        ids = ", ".join(j.job_id for j in jobs)
        print(f"jobs: {ids}; follow them with `python -m benchmarks list --grid {todo[0].grid}`")
        return ["submitted"] * len(jobs)
    statuses = []
    bar = grid_progress(len(jobs), disable=not context.progress)
    for job in jobs:
        try:
            statuses.append(job.result())
        except Exception as e:  # a job that died: its run is pending/failed in the store
            print(f"job {job.job_id} failed: {e}")
            statuses.append("failed")
        bar.update(1)
    bar.close()
    return statuses
