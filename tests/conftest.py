"""Shared fixtures: the real data root (or a skip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """$AMFS_DATA_ROOT, else ../shared/datasets beside the repository; skips the test when absent."""
    root = Path(os.environ.get("AMFS_DATA_ROOT") or Path(__file__).parents[1].parent / "shared" / "datasets")
    if not root.is_dir():
        pytest.skip(f"real data root {root} is absent (set AMFS_DATA_ROOT to run the real-data tests)")
    return root


@pytest.fixture(autouse=True, scope="session")
def single_cpu_thread():
    """One intra-op thread: the tests' tensors are tiny, and two threads on a busy two-core machine
    oversubscribe the cores (measured: a 3 s test took 30 s)."""
    import torch

    torch.set_num_threads(1)
