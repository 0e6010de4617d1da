"""What every run of one command shares, built once by the CLI and passed down as one value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


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
