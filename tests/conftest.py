"""Shared fixtures: the real data root (or a skip)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data root the command line reads ($AMFS_DATA_ROOT, else ./data); skips the test when absent."""
    from benchmarks.runs.context import data_root as default_data_root

    root = default_data_root()
    if not root.is_dir():
        pytest.skip(f"real data root {root} is absent (set AMFS_DATA_ROOT to run the real-data tests)")
    return root


@pytest.fixture(autouse=True, scope="session")
def single_cpu_thread():
    """One intra-op thread: the tests' tensors are tiny, and two threads on a busy two-core machine
    oversubscribe the cores (measured: a 3 s test took 30 s)."""
    import torch

    torch.set_num_threads(1)
