"""Executors run the specs of a grid: locally (in this process, or in N worker processes:
runs/workers.py), as local subprocess jobs through submitit (submitit-local), or as SLURM jobs through
submitit (slurm: runs/slurm.py). All call runner.run_one, which claims each run by its lock."""

from __future__ import annotations

import dataclasses
import signal
from dataclasses import dataclass, field

from benchmarks.runs.budget import Budget
from benchmarks.runs.context import RunContext
from benchmarks.runs.grids import RunSpec
from benchmarks.runs.interrupt import CONTROL
from benchmarks.runs.runner import UNPLANNED, run_one
from benchmarks.runs.slurm import SlurmOptions
from benchmarks.runs.status import run_status
from benchmarks.runs.store import ResultsStore
from benchmarks.runs.workers import Outcome, run_specs

EXECUTORS = ("local", "submitit-local", "slurm")


@dataclass(frozen=True)
class ExecutorOptions:
    """Which executor runs a grid, with how many workers and under what budget (local), and what a
    cluster job asks for (slurm)."""

    kind: str = "local"  # local | submitit-local | slurm
    workers: int | None = None  # local: runs at once, each in its own process when > 1 (None: default)
    budget_min: float | None = None  # local: minutes after which runs checkpoint and stop
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    wait: bool = False  # slurm: wait for the jobs instead of returning at once


class RunJob:
    """A picklable call of run_one, run by submitit in a job.

    Signals: SLURM sends TERM when a job is cancelled, requeued (scontrol requeue, preemption in
    REQUEUE mode) or reaches its time limit, and SIGKILL KillWait seconds later; the run checkpoints
    at its next iteration and stops ("interrupted"), and a requeued job resumes from there. USR2 is
    the warning submitit has SLURM send before the time limit (--signal=USR2@90): the run checkpoints
    and stops the same way, then submitit's own USR2 handler runs, outside the training loop, and
    requeues the job. A checkpoint is never taken inside a handler (runs/interrupt.py)."""

    def __init__(self, spec: RunSpec, context: RunContext, planned: str | None = UNPLANNED):
        self.spec = spec
        self.context = context
        self.planned = planned

    def __call__(self) -> str:
        from benchmarks.runs.locks import slurm_job
        from benchmarks.runs.slurm import forget_queued

        requeue = _defer_submitit_signal()
        CONTROL.stop_on(signal.SIGTERM)
        status = run_one(self.spec, self.context, self.planned)
        if status == "interrupted" and requeue is not None:
            requeue()  # submitit: self.checkpoint(), scontrol requeue, exit
        if status in ("done", "failed"):
            forget_queued(ResultsStore(self.context.results, self.spec.grid), self.spec.run_id, slurm_job()[0])
        return status

    def checkpoint(self):
        import submitit

        # The run saved its checkpoint before returning "interrupted"; the job resumes from it.
        return submitit.helpers.DelayedSubmission(self)


def _defer_submitit_signal():
    """Replace submitit's preemption handler (USR2) by one that asks the run to stop at the next
    iteration; return what calls submitit's handler afterwards (None outside a submitit job)."""
    try:
        from submitit.core.job_environment import JobEnvironment
    except ImportError:
        return None
    signum = JobEnvironment._usr_sig()
    original = signal.getsignal(signum)
    if not callable(original):
        return None
    received: list[int] = []

    def handler(number: int, frame) -> None:
        received.append(number)
        CONTROL.request_stop(f"signal {signal.Signals(number).name} (preemption or time limit)")

    signal.signal(signum, handler)

    def call_original() -> None:
        if received:
            original(received[0], None)

    return call_original


def local_plan(context: RunContext, options: ExecutorOptions) -> tuple[int, Budget | None]:
    """The number of workers and the budget of a local execution."""
    from benchmarks.device.environment import resolve_device
    from benchmarks.runs.budget import Estimator
    from benchmarks.runs.workers import default_workers

    device = resolve_device(context.device)
    workers = options.workers or default_workers(device.type)
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    budget = None
    if options.budget_min is not None:
        budget = Budget(options.budget_min, Estimator(context.results, device))
    return workers, budget


def execute(
    todo: list[RunSpec],
    context: RunContext,
    options: ExecutorOptions,
    planned: dict[str, str | None] | None = None,
    plan: tuple[int, Budget | None] | None = None,
) -> list[Outcome]:
    """Run every spec; one Outcome per spec, in order. `planned`: each run's record fingerprint when
    it was planned (runs/locks.record_fingerprint), so that a failed run is retried only once;
    `plan`: local_plan's workers and budget (made here when not given)."""
    if options.kind == "local":
        workers, budget = plan or local_plan(context, options)
        return run_specs(todo, context, workers, planned, budget)
    return _submitit(todo, context, options, planned or {})


def _submitit(
    todo: list[RunSpec], context: RunContext, options: ExecutorOptions, planned: dict[str, str | None]
) -> list[Outcome]:
    try:
        import submitit
    except ImportError as e:
        raise SystemExit("the submitit executors need submitit: pip install 'amfs-bench[cluster]'") from e
    from submitit.core.utils import FailedJobError

    from benchmarks.runs import slurm

    if not todo:
        return []
    grid = todo[0].grid
    folder = context.results / grid / "jobs"
    cluster = "local" if options.kind == "submitit-local" else "slurm"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    if cluster == "slurm":
        params, job_context = slurm.slurm_parameters(options.slurm, context, grid)
    else:
        params = {"timeout_min": options.slurm.time_min, "name": f"amfs-{grid}"}
        job_context = dataclasses.replace(context.absolute(), progress=False)
    executor.update_parameters(**params)
    jobs_of = [RunJob(spec, job_context, planned.get(spec.run_id, UNPLANNED)) for spec in todo]
    try:
        jobs = executor.submit_array(jobs_of)
    except FailedJobError as e:
        message = str(e).strip().splitlines()
        raise slurm.CannotStart(
            "sbatch refused the jobs: "
            + " ".join(line for line in message if "error" in line.lower())[:500]
            + " (check --partition, --gpus, --mem, --cpus-per-task, --time and --sbatch-option)"
        ) from e
    print(f"submitted {len(jobs)} {cluster} jobs; logs in {folder}")
    if cluster == "slurm":
        for spec, job in zip(todo, jobs, strict=True):
            slurm.mark_queued(ResultsStore(context.results, spec.grid), spec.run_id, job.job_id)
        if not options.wait:
            ids = ", ".join(j.job_id for j in jobs)
            print(f"jobs: {ids}; follow them with `python -m benchmarks list --grid {grid}`")
            return [Outcome(spec, "submitted") for spec in todo]
        slurm.wait_for_jobs([j.job_id for j in jobs])
        return [Outcome(spec, _stored_status(context, spec)) for spec in todo]
    outcomes = []
    for spec, job in zip(todo, jobs, strict=True):
        try:
            outcomes.append(Outcome(spec, job.result()))
        except Exception as e:  # a job that died: its run is pending/failed in the store
            print(f"job {job.job_id} failed: {e}")
            outcomes.append(Outcome(spec, _stored_status(context, spec)))
    return outcomes


def _stored_status(context: RunContext, spec: RunSpec) -> str:
    """What the store says of a run whose job has ended: done, failed, interrupted or pending."""
    status, _ = run_status(ResultsStore(context.results, spec.grid), spec)
    return status
