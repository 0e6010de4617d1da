"""Sinusoid regression (Finn et al. 2017, section 5.1): y = A sin(x - phase), generated, no files.

Each task draws amplitude A ~ U[0.1, 5] and phase ~ U[0, pi]; its K support and q query inputs are
x ~ U[-5, 5]. The draws of a meta-batch depend only on (seed, split, index, n_tasks, k_shot, n_query).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from benchmarks.data.seeding import episode_generator
from benchmarks.data.split_data import SPLITS
from benchmarks.data.tasks import TaskBatch

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)

INFO = {
    "sources": ["generated (Finn et al. 2017, section 5.1)"],
    "layout": "none: tasks are generated",
    "splits": "train / val / test differ only in their episode seeds",
    "image_size": None,
}


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float32)


class SinusoidTasks:
    """K-shot sinusoid regression tasks: x, y float [T, n, 1] on `device`."""

    def __init__(self, k_shot: int, n_query: int, split: str, device: torch.device | str = "cpu"):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if k_shot < 1 or n_query < 1:
            raise ValueError(f"k_shot and n_query must be >= 1, got {k_shot} and {n_query}")
        self.k_shot, self.n_query, self.split = k_shot, n_query, split
        self.device = torch.device(device)

    def tasks(self, seed: int, index: int, n_tasks: int) -> TaskBatch:
        g = episode_generator(seed, "sinusoid", self.split, index)
        amplitude = _uniform((n_tasks, 1, 1), *AMPLITUDE, g)
        phase = _uniform((n_tasks, 1, 1), *PHASE, g)
        x = _uniform((n_tasks, self.k_shot + self.n_query, 1), *X_RANGE, g)
        y = amplitude * torch.sin(x - phase)
        x, y = x.to(self.device), y.to(self.device)
        k = self.k_shot
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    @property
    def provenance(self) -> dict[str, Any]:
        return {
            "dataset": "sinusoid",
            "generated": True,
            "split": self.split,
            "amplitude": list(AMPLITUDE),
            "phase": list(PHASE),
            "x": list(X_RANGE),
            "k_shot": self.k_shot,
            "n_query": self.n_query,
            "source": "Finn et al. 2017, section 5.1",
        }
