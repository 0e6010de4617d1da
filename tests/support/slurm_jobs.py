"""Picklable functions that tests submit to a SLURM cluster through submitit.

They live in an importable module (not in a test file) because submitit pickles a function by
reference: the job's Python must be able to ``import support.slurm_jobs``, i.e. ``tests/`` must be on
the job's PYTHONPATH (sbatch exports the submitter's environment, so setting PYTHONPATH in the
submitting process is enough; pytest's in-process sys.path changes are not).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def square(x: int) -> int:
    """The trivial job."""
    return x * x


def job_facts() -> dict[str, str | None]:
    """What the job saw: SLURM's variables, the interpreter, and submitit's environment."""
    keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT", "SLURM_CPUS_PER_TASK")
    facts: dict[str, str | None] = {k: os.environ.get(k) for k in keys}
    facts["python"] = sys.executable
    facts["SUBMITIT_EXECUTOR"] = os.environ.get("SUBMITIT_EXECUTOR")
    return facts


class Resumable:
    """A checkpointable job, the shape of benchmarks.executors.RunJob: it counts the runs it has
    started in ``folder``; the first run waits to be preempted, a restarted run returns at once.

    submitit calls ``checkpoint`` from its SIGUSR2 handler, pickles what it returns, requeues the job
    (``scontrol requeue``) and exits; SLURM starts the job again, which unpickles the checkpoint.
    """

    def __init__(self, folder: str, wait_s: float = 60.0) -> None:
        self.folder = folder
        self.wait_s = wait_s
        self.checkpoints = 0

    def __call__(self) -> dict[str, object]:
        runs = Path(self.folder) / "runs"
        with runs.open("a") as f:
            f.write(f"{os.environ.get('SLURM_RESTART_COUNT', '0')}\n")
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        deadline = time.monotonic() + self.wait_s
        while restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # the test preempts the job now
        return {"restart_count": restarts, "checkpoints": self.checkpoints, "runs": runs.read_text().split()}

    def checkpoint(self):
        import submitit

        self.checkpoints += 1
        return submitit.helpers.DelayedSubmission(self)
