"""Prototypes (ProtoNet, Snell et al. 2017): the standard metric-learning control.

    c_k = mean of the support features of class k          k = 1 .. N
    logit_qk = -||F_Q[q] - c_k||^2                           (squared Euclidean, no scale)

No parameters besides the backbone, no inner steps; classification only. First-order variant: the
prototypes come from detached support features, so the meta-gradient reaches the backbone only
through the query features (what adaptation computes from the support set is held constant, as in
first-order MAML and I-AMFS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from baselines.features import support_and_query_features

Params = dict[str, Tensor]
# features(params, x, stats_rows[, differentiated_twice]): the backbone's features of x (batch-norm
# statistics from all rows, or the first stats_rows); no pass here is differentiated twice.
FeatureFn = Callable[..., Tensor]


@dataclass(frozen=True)
class PrototypeInner:
    """Negative squared distances to the class means of the support features as logits."""

    n_outputs: int
    task: str = "classification"
    first_order: bool = False
    bn_mode: str = "transductive"
    name: str = field(default="prototypes", init=False)

    # registry (benchmarks/learner/registry.py, docs/adding-a-method.md)
    config_prefix: ClassVar[str] = "prototypes"  # no own settings
    task_kinds: ClassVar[tuple[str, ...]] = ("classification",)
    order: ClassVar[str] = "exact"
    batched_on_cuda: ClassVar[bool] = False  # not measured: the closed-form heads' choice (I-AMFS)
    assumptions: ClassVar[tuple[tuple[str, dict[str, object]], ...]] = (
        ("prototypes-squared-euclidean", {}),
        ("prototypes-first-order-detached-support", {"first_order": True}),
    )

    def __post_init__(self) -> None:
        if self.task not in self.task_kinds:
            raise ValueError(f"prototypes are defined for classification only, got task {self.task!r}")
        if self.bn_mode not in ("transductive", "inductive"):
            raise ValueError(f"bn_mode must be 'transductive' or 'inductive', got {self.bn_mode!r}")

    def init_parameters(self, feature_dim: int, generator: torch.Generator) -> Params:
        """No parameters of its own."""
        return {}

    def _features(
        self, features: FeatureFn, params: Params, support_x: Tensor, query_x: Tensor, rows: int
    ) -> tuple[Tensor, Tensor]:
        return support_and_query_features(features, params, support_x, query_x, rows, self.bn_mode)

    def _logits(self, f_s: Tensor, f_q: Tensor, support_y: Tensor) -> Tensor:
        """[..., n_Q, N] from f_s [..., n_S, d], f_q [..., n_Q, d], support_y [..., n_S]; every class has
        at least one support example in an episode."""
        if self.first_order:
            f_s = f_s.detach()
        members = (support_y.unsqueeze(-1) == torch.arange(self.n_outputs, device=support_y.device)).to(f_s.dtype)
        prototypes = (members.mT @ f_s) / members.sum(-2).unsqueeze(-1)  # [..., N, d]
        # explicit differences, not |q|^2 + |c|^2 - 2 q.c: no cancellation, and few-shot sizes are small
        return -(f_q.unsqueeze(-2) - prototypes.unsqueeze(-3)).pow(2).sum(-1)

    def query_outputs(
        self, features: FeatureFn, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, training: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Query logits and per-task diagnostics (none here)."""
        f_s, f_q = self._features(features, params, support_x, query_x, rows=0)
        return self._logits(f_s, f_q, support_y), {}

    def query_outputs_tasks(
        self, features: FeatureFn, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, training: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """query_outputs for T tasks at once (MetaLearner strategy 'batched'): data with a leading task
        dimension, `features` computing [T, N, F]; logits [T, Nq, N] and no diagnostics."""
        f_s, f_q = self._features(features, params, support_x, query_x, rows=1)
        return self._logits(f_s, f_q, support_y), {}
