"""SLURM through submitit: what a job asks for, following jobs without accounting, giving up on
jobs that cannot start, and the queued markers that `list` shows.

- Resources (`slurm_parameters`) come from options, with defaults that fit the request: CPUs per
  task = --threads or 1; GPUs only when asked (--gpus) or when --device is cuda (a GPU request
  on a cluster without GPUs is refused by sbatch: "Invalid generic resource (gres) specification");
  memory, partition and site specifics (account, QOS, constraint: --sbatch-option) only when given.
- submitit reads job states from `sacct`, which fails where accounting is off: the state stays
  UNKNOWN and a job that never writes a result is waited for ever. `--wait` therefore polls `squeue`
  (SqueueInfoWatcher serves submitit the same way), and gives up, cancelling the jobs, when SLURM
  says why a job can never start (NEVER_STARTS: e.g. PartitionConfig, more CPUs than any node has).
- `results/<grid>/queued/<run_id>.json` names the job of each submitted run, so that `list` shows
  queued runs with SLURM's state and reason; a job removes its marker when its run ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common.files import atomic_write_json
from benchmarks.runs.config import ConfigError
from benchmarks.runs.context import RunContext
from benchmarks.runs.store import ResultsStore

#: Pending reasons that mean the job will never start as submitted (SLURM 22.05's squeue %r codes).
NEVER_STARTS = {
    "PartitionConfig": "the request exceeds what the partition's nodes have (CPUs, memory, GPUs)",
    "PartitionNodeLimit": "the request needs more nodes than the partition allows",
    "PartitionTimeLimit": "--time exceeds the partition's time limit",
    "BadConstraints": "no node has the requested features or resources",
    "InvalidAccount": "the account is invalid",
    "InvalidQOS": "the QOS is invalid",
    "QOSNotAllowed": "the QOS is not allowed here",
    "AccountNotAllowed": "the account is not allowed to use the partition",
    "DependencyNeverSatisfied": "a dependency can never be satisfied",
}
#: squeue states after which a job's processes are gone.
TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "GONE",
}
#: sbatch options that have their own command-line option.
OWN_OPTIONS = {
    "cpus-per-task": "--cpus-per-task",
    "c": "--cpus-per-task",
    "mem": "--mem",
    "gpus": "--gpus",
    "gpus-per-node": "--gpus",
    "gres": "--gpus",
    "partition": "--partition",
    "p": "--partition",
    "time": "--time",
    "t": "--time",
    "array": "--array-parallelism",
}


class CannotStart(RuntimeError):
    """A submitted job that SLURM will never start, with SLURM's reason."""


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """What each job asks SLURM for."""

    partition: str | None = None
    cpus_per_task: int | None = None  # None: --threads, else 1
    mem: str | None = None  # SLURM syntax: 16G, 4000M
    gpus: int | None = None  # None: 1 with --device cuda, else none
    time_min: int = 240
    array_parallelism: int = 16
    sbatch: tuple[tuple[str, str], ...] = ()  # site specifics: account, qos, constraint ...


def parse_sbatch_options(items: list[str]) -> tuple[tuple[str, str], ...]:
    """--sbatch-option KEY=VALUE items -> ((key, value), ...); keys of OWN_OPTIONS are refused."""
    parsed = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("_", "-")
        if not sep or not key or not value:
            raise ConfigError(f"--sbatch-option {item!r}: expected KEY=VALUE, e.g. account=myproject or qos=high")
        if key in OWN_OPTIONS:
            raise ConfigError(f"--sbatch-option {item!r}: use {OWN_OPTIONS[key]} for {key}")
        parsed.append((key, value))
    return tuple(parsed)


def slurm_parameters(options: SlurmOptions, context: RunContext, grid: str) -> tuple[dict[str, Any], RunContext]:
    """submitit's parameters for the jobs of a grid, and the RunContext the jobs run with."""
    cpus = options.cpus_per_task or context.threads or 1
    gpus = options.gpus if options.gpus is not None else (1 if context.device == "cuda" else 0)
    if context.device == "cuda" and gpus == 0:
        raise ConfigError("--device cuda with --gpus 0: the jobs would have no GPU; ask for --gpus 1 or --device cpu")
    if cpus < 1 or gpus < 0:
        raise ConfigError(f"--cpus-per-task must be >= 1 and --gpus >= 0 (got {cpus} and {gpus})")
    params: dict[str, Any] = {
        "timeout_min": options.time_min,
        "name": f"amfs-{grid}",
        "cpus_per_task": cpus,
        "slurm_array_parallelism": options.array_parallelism,
    }
    if options.partition:
        params["slurm_partition"] = options.partition
    if gpus:
        params["gpus_per_node"] = gpus
    if options.mem:
        params["slurm_mem"] = options.mem
    if options.sbatch:
        params["slurm_additional_parameters"] = dict(options.sbatch)
    device = context.device if context.device != "auto" else ("cuda" if gpus else "cpu")
    job_context = dataclasses.replace(context.absolute(), device=device, threads=cpus, progress=False)
    return params, job_context


# --------------------------------------------------------------------------------------------------
# squeue


def squeue(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{job id: (state, reason)} for the given jobs or arrays (one entry per array task, as
    "<array>_<task>"), from `squeue --states=all`, which keeps ended jobs for MinJobAge. Jobs squeue
    no longer knows are absent. RuntimeError when squeue cannot be asked."""
    if shutil.which("squeue") is None:
        raise RuntimeError("squeue is not on PATH: --wait needs SLURM's client commands")
    bases = sorted({j.split("_")[0] for j in job_ids})
    if not bases:
        return {}
    done = subprocess.run(
        ["squeue", "-h", "-r", "--states=all", "--jobs=" + ",".join(bases), "-o", "%i|%T|%r"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return {}
        raise RuntimeError(f"squeue failed: {done.stderr.strip()}")
    states = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def never_starts(reason: str) -> str | None:
    """Why a job pending for `reason` will never start, or None when it may."""
    if reason in NEVER_STARTS:
        return NEVER_STARTS[reason]
    if reason.endswith("PerJobLimit") or reason.endswith("PerJob"):
        return "the request exceeds a per-job limit of the account or QOS"
    return None


def wait_for_jobs(job_ids: list[str], poll_s: float = 2.0, report=print) -> None:
    """Return when every job has ended; CannotStart (after cancelling them all) when SLURM says one
    of them will never start."""
    left = set(job_ids)
    shown: dict[str, str] = {}
    while left:
        states = squeue(sorted(left))
        for job in sorted(left):
            state, reason = states.get(job, ("GONE", ""))
            if state == "PENDING" and (why := never_starts(reason)):
                cancel(job_ids)
                raise CannotStart(
                    f"job {job} cannot start: pending with reason {reason} ({why}); cancelled the "
                    f"{len(job_ids)} jobs of this submission. Ask for less (--cpus-per-task, --mem, --gpus, "
                    "--time) or another --partition"
                )
            if state in TERMINAL:
                left.discard(job)
            elif shown.get(job) != f"{state} {reason}":
                shown[job] = f"{state} {reason}"
                report(f"  job {job}: {state}" + (f" ({reason})" if reason and reason != "None" else ""))
        if left:
            time.sleep(poll_s)


def cancel(job_ids: list[str]) -> None:
    bases = sorted({j.split("_")[0] for j in job_ids})
    if bases and shutil.which("scancel"):
        subprocess.run(["scancel", *bases], capture_output=True, timeout=60)


# --------------------------------------------------------------------------------------------------
# queued markers


def queued_path(store: ResultsStore, run_id: str) -> Path:
    return store.root / "queued" / f"{run_id}.json"


def mark_queued(store: ResultsStore, run_id: str, job_id: str) -> None:
    atomic_write_json(queued_path(store, run_id), {"job": job_id, "submitted": time.time()})


def forget_queued(store: ResultsStore, run_id: str, job_id: str | None) -> None:
    """Remove the run's marker if it names this job (a later submission's marker stays)."""
    path = queued_path(store, run_id)
    with contextlib.suppress(OSError, ValueError):
        if job_id is None or json.loads(path.read_text()).get("job") == job_id:
            path.unlink()


def queued_jobs(store: ResultsStore, run_ids: list[str]) -> dict[str, str]:
    """{run id: "job <id>: <state> (<reason>)"} for runs whose submitted job SLURM still has queued
    or running; nothing when squeue cannot be asked."""
    jobs = {}
    for run_id in run_ids:
        with contextlib.suppress(OSError, ValueError):
            jobs[run_id] = json.loads(queued_path(store, run_id).read_text())["job"]
    if not jobs:
        return {}
    try:
        states = squeue(list(jobs.values()))
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for run_id, job in jobs.items():
        state, reason = states.get(job, ("GONE", ""))
        if state not in TERMINAL:
            out[run_id] = f"job {job}: {state}" + (f" ({reason})" if reason and reason != "None" else "")
    return out


# --------------------------------------------------------------------------------------------------
# submitit without accounting


@contextlib.contextmanager
def use_squeue(delay_s: int = 60) -> Iterator[Any]:
    """Within the block, submitit's SlurmJob reads job states through squeue (SqueueInfoWatcher)."""
    from submitit.slurm.slurm import SlurmJob

    saved = SlurmJob.watcher
    SlurmJob.watcher = watcher_class()(delay_s=delay_s)
    try:
        yield SlurmJob.watcher
    finally:
        SlurmJob.watcher = saved


_WATCHER: list[type] = []


def watcher_class() -> type:
    """SqueueInfoWatcher: a submitit SlurmInfoWatcher that calls `squeue --states=all
    --format=%i|%T|%N --jobs=ID,...` instead of sacct. squeue's state names are sacct's, so
    submitit's done() logic applies as it is. squeue drops ids it no longer knows (purged MinJobAge
    after they ended) and fails only when it knows none of them; submitit then keeps the last states
    it read. Built on first use: submitit is an optional dependency."""
    if _WATCHER:
        return _WATCHER[0]
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueInfoWatcher(SlurmInfoWatcher):
        def _make_command(self) -> list[str] | None:
            to_check = sorted({x.split("_")[0] for x in self._registered - self._finished})
            if not to_check:
                return None
            return ["squeue", "--states=all", "--format=%i|%T|%N", "--jobs=" + ",".join(to_check)]

        def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
            text = string.decode() if isinstance(string, bytes) else string
            lines = text.splitlines()
            if lines:
                lines[0] = "JobID|State|NodeList"  # squeue's header is JOBID|STATE|NODELIST
            return super().read_info("\n".join(lines))

    _WATCHER.append(SqueueInfoWatcher)
    return SqueueInfoWatcher
