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

Tensor memory (TensorMemory), on any device: the most bytes of tensor storage created during one
call and alive at the same time, counted per storage by a dispatch mode that sees every operator
(backward included). It is what a caching allocator's peak allocation would show, without the
allocator's rounding and the libraries' workspaces, and it does not depend on what the process heap
kept from earlier rows, so it is exact and repeatable on the CPU, where the resident set is neither.
"""

from __future__ import annotations

import gc
import re
import statistics
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from benchmarks.device.heap import release_freed_memory

CUDA_MEMORY_MEASURE = (
    "rise of the peak allocated by PyTorch on the GPU (torch.cuda.max_memory_allocated) over the allocation "
    "before the row, across its setup (parameters, optimiser, CUDA-graph capture) and timed calls, MiB"
)
CPU_MEMORY_MEASURE = "rise of the process's peak resident set (Linux VmHWM) over its size before the calls, MiB"
TENSOR_MEMORY_MEASURE = (
    "the most tensor storage created during one meta-iteration (after the timed ones) and alive at once, "
    "counted per storage by a dispatch mode (perf_timing.TensorMemory): exact and repeatable on any device; "
    "'-' for a CUDA-graph replay, which allocates nothing new, MiB"
)


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


class TensorMemory(TorchDispatchMode):
    """Context manager counting the storages that operators create inside it: `.peak_bytes` is the
    largest total alive at once (see the module docstring), `.mib` the same in MiB. A storage is
    counted once however many views share it, and leaves the total when it is freed. Storages that
    existed before entering (parameters, the input batch) are not counted, nor credited when freed."""

    def __init__(self) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._alive: set[int] = set()

    @property
    def mib(self) -> float:
        return self.peak_bytes / 2**20

    def _freed(self, key: int, nbytes: int) -> None:
        self._alive.discard(key)
        self.live_bytes -= nbytes

    def _count(self, tensor: torch.Tensor) -> None:
        # PyTorch keeps one Python object per live storage, so its id names the storage while it lives
        storage = tensor.untyped_storage()
        key = id(storage)
        if key in self._alive:
            return
        nbytes = storage.nbytes()
        self._alive.add(key)
        self.live_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        weakref.finalize(storage, self._freed, key, nbytes)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        # an output that aliases an input (a view, an in-place or out= result) is memory counted
        # already, or memory that existed before: a slice of the input batch is not new memory
        if all(r.alias_info is None for r in func._schema.returns):
            for leaf in tree_leaves(out):
                if isinstance(leaf, torch.Tensor) and leaf.layout == torch.strided and leaf.device.type != "meta":
                    self._count(leaf)
        return out


def tensor_memory_mib(fn: Callable[[], object], device: torch.device) -> float:
    """TensorMemory of one call of fn, in MiB."""
    gc.collect()
    synchronize(device)
    with TensorMemory() as memory:
        fn()
        synchronize(device)
    return memory.mib
