"""submitit job states from ``squeue`` instead of ``sacct``, for clusters without accounting.

submitit (1.5) asks ``sacct`` for every job state. Without accounting (as on the test cluster:
``AccountingStorageType=accounting_storage/none``) sacct exits 1 with "Slurm accounting storage is
disabled", submitit logs "Bypassing sacct error ..., status may be inaccurate" on every poll, and
``job.state`` stays 'UNKNOWN' for ever: ``job.done()`` only turns true when the job's result pickle
appears, so a job that dies without one (cancelled, killed, never started) is never done and
``job.result()`` waits for ever.

:class:`SqueueInfoWatcher` reads the same fields from ``squeue --states=all`` (which keeps finished
jobs for MinJobAge seconds); :func:`use_squeue` installs it on submitit's SlurmJob class while the
``with`` block runs. squeue's state names are sacct's (PENDING, RUNNING, COMPLETED, FAILED,
CANCELLED, TIMEOUT, ...), so submitit's ``done()`` logic applies unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob


class SqueueInfoWatcher(SlurmInfoWatcher):
    """A SlurmInfoWatcher that calls ``squeue --states=all --format=%i|%T|%N --jobs=ID,...``.

    squeue drops ids it no longer knows (purged MinJobAge after they ended) and fails only when it
    knows none of them; submitit then logs its usual warning and keeps the last states it read."""

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


@contextlib.contextmanager
def use_squeue(delay_s: int = 60) -> Iterator[SqueueInfoWatcher]:
    """Within the block, every submitit SlurmJob reads its state through a fresh SqueueInfoWatcher
    (``delay_s``: the longest wait between two polls; submitit polls sooner while jobs are young)."""
    saved = SlurmJob.watcher
    SlurmJob.watcher = SqueueInfoWatcher(delay_s=delay_s)
    try:
        yield SlurmJob.watcher
    finally:
        SlurmJob.watcher = saved
