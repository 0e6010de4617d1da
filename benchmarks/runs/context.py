"""What every run of one command shares, built once by the CLI and passed down as one value."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path


def data_root(arg: str | None = None) -> Path:
    """--data-root, else $AMFS_DATA_ROOT, else ./data (the tests look in the same place)."""
    return Path(arg or os.environ.get("AMFS_DATA_ROOT") or "data")


def cache_dir(arg: str | None = None) -> Path:
    """--cache-dir, else $AMFS_CACHE_DIR, else ./cache."""
    return Path(arg or os.environ.get("AMFS_CACHE_DIR") or "cache")


@dataclass(frozen=True)
class RunContext:
    """Where a run reads its inputs and writes its results, and how it runs."""

    data_root: Path  # the datasets in their official layouts
    cache_dir: Path  # preprocessed caches (data.cache)
    results: Path  # the results folder: <results>/<grid>/runs/*.json
    device: str = "auto"  # cpu | cuda | auto
    threads: int | None = None  # CPU threads per run (None: 1 on the CPU, PyTorch's choice on CUDA)
    progress: bool = True  # progress bars
    deadline: float | None = None  # time.time() at which training checkpoints and stops (run --budget)

    def absolute(self) -> RunContext:
        """The same context with absolute paths, for jobs that start in another working directory."""
        return dataclasses.replace(
            self, data_root=self.data_root.resolve(), cache_dir=self.cache_dir.resolve(), results=self.results.resolve()
        )
