"""The CPU heap policy (benchmarks/device/heap.py): applied once, recorded, and it stops the page faults."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from benchmarks.device.environment import environment
from benchmarks.device.heap import heap_policy, retain_freed_memory


def test_policy_is_applied_once_and_recorded():
    first = retain_freed_memory()
    assert retain_freed_memory() == first == heap_policy()
    assert environment(torch.device("cpu"))["heap"] == first


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults():
    if not retain_freed_memory().startswith("glibc, freed memory retained"):
        pytest.skip(f"policy not available here: {heap_policy()}")
    pages = 12 * 2**20 // 4096

    def allocate_and_free() -> int:  # blocks of the size of Conv-4 activations, touched, then freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [torch.empty(mib * 2**20, dtype=torch.uint8).fill_(1) for mib in (8, 4)]
        del blocks
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    for _ in range(5):  # the first uses fault the pages in (and grow the heap to fit both blocks)
        allocate_and_free()
    faults = [allocate_and_free() for _ in range(3)]
    # Under glibc's default policy the same loop faults ~2,000 pages every time (the 8 MiB block).
    assert max(faults) < pages // 10, faults
