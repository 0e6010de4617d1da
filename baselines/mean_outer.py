"""MAML's outer loop: the meta-gradient is the mean of the task gradients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor


@dataclass(frozen=True)
class MeanOuter:
    """G = (1/T) sum_i g_i. Needs no per-task gradients: the gradient of the mean loss is the same."""

    needs_per_task_gradients: bool = field(default=False, init=False)
    name: str = field(default="mean", init=False)
    assumptions: ClassVar[tuple[tuple[str, dict[str, object]], ...]] = ()  # ids it brings (registry)

    def combine(self, task_gradients: Tensor) -> Tensor:
        """task_gradients: [T, P] flattened per-task gradients -> [P]."""
        return task_gradients.mean(0)
