"""O-AMFS: the outer loop that weights task gradients by their cosine similarity.

    w_ij = cos(g_i, g_j),   c_i = 1 + (1/m) sum_{j != i} w_ij  with m = T - 1  (assumption: the
    summary leaves m undefined),   G = (1/T) sum_i c_i g_i

With T = 1 the weight is 1 and G is the plain gradient; T identical gradients get weight 2 each.
The weights are plain numbers (no gradient flows through them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor


def cosine_task_weights(task_gradients: Tensor, eps: float = 1e-12) -> Tensor:
    """c_i for task_gradients [T, P] -> [T]. A zero gradient has cosine 0 with every other."""
    t = task_gradients.shape[0]
    if t == 1:
        return torch.ones(1, dtype=task_gradients.dtype, device=task_gradients.device)
    unit = task_gradients / task_gradients.norm(dim=1, keepdim=True).clamp_min(eps)
    cos = unit @ unit.T
    off_diagonal_sum = cos.sum(1) - cos.diagonal()
    return 1.0 + off_diagonal_sum / (t - 1)


@dataclass(frozen=True)
class CosineWeightedOuter:
    """Meta-gradient G = (1/T) sum_i c_i g_i from per-task gradients."""

    needs_per_task_gradients: bool = field(default=True, init=False)
    name: str = field(default="cosine", init=False)
    # ids it brings (benchmarks/learner/registry.py)
    assumptions: ClassVar[tuple[tuple[str, dict[str, object]], ...]] = (
        ("cosine-m-is-t-minus-1", {}),
        ("cosine-weights-constant", {}),
    )

    def combine(self, task_gradients: Tensor) -> Tensor:
        """task_gradients [T, P] -> [P]."""
        weights = cosine_task_weights(task_gradients.detach())
        return (weights[:, None] * task_gradients).mean(0)
