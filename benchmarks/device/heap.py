"""The process's heap policy on the CPU: keep freed memory for reuse instead of handing it back.

A meta-iteration on the CPU allocates and frees the same tens of megabytes of activations every
time. With glibc's default policy, blocks that large are mapped fresh from the kernel and unmapped
when freed (or the heap top is trimmed), so every iteration page-faults them in again. Measured on
the 2-core CPU (getrusage around one Omniglot MAML meta-iteration of 4 tasks): 11,000-22,000 minor
page faults per iteration by default, under 1,000 (mostly none) with this policy; the paired MAML
iterations of `perf` went from 311 to about 250 ms, ours and learn2learn's alike. The default's count
also depends on what the process did before (glibc adapts its threshold to earlier frees), so the
same row timed later in a run could be faster. Keeping freed blocks removes both. Like
PyTorch's caching allocator on CUDA, it changes no number, only time; the resident set stays at its
peak. Both `run` and `perf` apply it, so in perf every row (learn2learn's too) runs under it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below the mmap threshold come from the heap, not from their own mapping: 1 GiB keeps the
# activations' blocks in the heap (tests/device/test_heap.py; reports/perf/NOTES.md, "Defaults in the code"); glibc
# versions that refuse values above 32 MiB get 32 MiB.
MMAP_THRESHOLDS = (2**30, 32 * 2**20)
TRIM_THRESHOLD = 2**31 - 1  # free heap top kept up to this size instead of returned

_applied: str | None = None


def retain_freed_memory() -> str:
    """Apply the policy once per process (glibc on Linux only) and return heap_policy()."""
    global _applied
    if _applied is not None:
        return _applied
    libc = _glibc()
    if libc is None:
        _applied = "platform default (not glibc)"
        return _applied
    mmap_threshold = next((t for t in MMAP_THRESHOLDS if libc.mallopt(_M_MMAP_THRESHOLD, t) == 1), None)
    if mmap_threshold is None or libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        _applied = "glibc default (mallopt refused the retaining thresholds)"
    else:
        _applied = f"glibc, freed memory retained (mmap threshold {mmap_threshold // 2**20} MiB, trim threshold 2 GiB)"
    return _applied


def heap_policy() -> str:
    """What the process's heap does with freed memory, for the environment of a result."""
    return _applied if _applied is not None else "platform default"


def release_freed_memory() -> None:
    """Hand the heap's free memory back to the system now (malloc_trim; glibc only), whatever the
    policy: perf's CPU memory gauge starts each row from the resident set without it."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only (not musl)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
