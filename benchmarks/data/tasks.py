"""A meta-batch of few-shot tasks, as every sampler produces it and every method consumes it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TaskBatch:
    """T tasks stacked on dimension 0.

    Classification: x are float images [T, n, C, H, W], y are int64 labels 0..N-1 [T, n].
    Regression: x [T, n, 1], y [T, n, 1] float.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    @property
    def n_tasks(self) -> int:
        return self.support_x.shape[0]

    def task(self, i: int) -> TaskBatch:
        """Task i as a batch of one."""
        return TaskBatch(*(t[i : i + 1] for t in self.tensors()))

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.support_x, self.support_y, self.query_x, self.query_y

    def slice(self, start: int, stop: int) -> TaskBatch:
        return TaskBatch(*(t[start:stop] for t in self.tensors()))

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(*(t.to(device, non_blocking=True) for t in self.tensors()))
