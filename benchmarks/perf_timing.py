"""Clocks and memory gauges for `python -m benchmarks perf`.

Time: on CUDA, CUDA events recorded around each call (the GPU's own clock, read after the end
event has completed); on the CPU, the wall clock after the call returns (CPU work is synchronous).
Memory: on CUDA, the rise of the allocator's peak (torch.cuda.max_memory_allocated after a reset)
over what was allocated when the gauge started, so that memory left by earlier rows or shared by
all of them (the input batch) does not count; the gauge spans a row's setup as well as its calls,
so a CUDA-graph row counts the memory its capture draws into the graph's private pool (a replay
allocates nothing new). On the CPU, the rise of the process's resident
set high-water mark (Linux VmHWM, reset through /proc/self/clear_refs) over the resident size just
before the calls, after freed heap memory was handed back to the system (malloc_trim). The CPU
figure misses memory the allocator reuses from pages it still holds, so it is a lower bound; where
/proc or glibc is missing it is None ("n/a"), never a guess.
"""

from __future__ import annotations

import gc
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.heap import release_freed_memory

CUDA_MEMORY_MEASURE = (
    "rise of the peak allocated by PyTorch on the GPU (torch.cuda.max_memory_allocated) over the allocation "
    "before the row, across its setup (parameters, optimiser, CUDA-graph capture) and timed calls, MiB"
)
CPU_MEMORY_MEASURE = "rise of the process's peak resident set (Linux VmHWM) over its size before the calls, MiB"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Milliseconds of each of `repeats` calls of fn, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples: list[float] = []
    for _ in range(repeats):
        if device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(float(start.elapsed_time(end)))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1000.0)
    return samples


def summarize(samples: list[float]) -> dict[str, float]:
    """Median and the spread of the samples: interquartile range as a fraction of the median."""
    median = statistics.median(samples)
    if len(samples) >= 2:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = q3 = median
    return {"median": median, "iqr_fraction": (q3 - q1) / median if median > 0 else 0.0}


def _proc_status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


class PeakMemory:
    """Context manager; `.mib` is the peak memory of the enclosed calls (see the module docstring)
    or None where the device offers no honest measure."""

    def __init__(self, device: torch.device):
        self.device = device
        self.mib: float | None = None
        self._baseline_kib: int | None = None
        self._baseline_bytes = 0

    @property
    def measure(self) -> str:
        return CUDA_MEMORY_MEASURE if self.device.type == "cuda" else CPU_MEMORY_MEASURE

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._baseline_bytes = torch.cuda.memory_allocated(self.device)
            return self
        release_freed_memory()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak resident set to the current
        except OSError:
            return self
        self._baseline_kib = _proc_status_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = (torch.cuda.max_memory_allocated(self.device) - self._baseline_bytes) / 2**20
            return
        peak = _proc_status_kib("VmHWM")
        if self._baseline_kib is not None and peak is not None:
            self.mib = max(peak - self._baseline_kib, 0) / 1024
