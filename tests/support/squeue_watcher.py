"""submitit job states from ``squeue`` instead of ``sacct``, for clusters without accounting.

The logic lives in the package (benchmarks/runs/slurm.py), where the SLURM executor's ``--wait``
needs it; this module keeps the names the cluster tests use.
"""

from __future__ import annotations

from benchmarks.runs.slurm import use_squeue, watcher_class

SqueueInfoWatcher = watcher_class()

__all__ = ["SqueueInfoWatcher", "use_squeue"]
