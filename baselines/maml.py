"""The MAML inner loop (Finn et al. 2017): gradient steps on the support set, differentiated through.

Model = backbone + linear head with one output per class (or one output for regression). Every
parameter, backbone and head alike, is adapted:

    theta_{s+1} = theta_s - a * grad_theta L_S(theta_s),   s = 0 .. steps-1

and the query outputs come from theta_steps. Second order: the meta-gradient flows through the
inner gradients. First order (FO-MAML): the inner gradients are treated as constants (detached).

Written with torch.func so that the same function runs per task in a loop or vmapped over tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

Params = dict[str, Tensor]
# features(params, x, stats_rows, differentiated_twice): the backbone's features of x. The flag is True
# for the passes whose inner gradient the meta-gradient differentiates through (second order, in
# training): they are differentiated twice. It changes no value; the harness may choose a memory layout
# or batch-norm kernel by it.
FeatureFn = Callable[[Params, Tensor, "int | None", bool], Tensor]

BN_MODES = ("transductive", "inductive")
TASK_KINDS = ("classification", "regression")
# How the linear head's weight is drawn (its bias is always zero):
#   xavier            Xavier-uniform, U(-b, b) with b = sqrt(6 / (fan_in + fan_out))
#   normal            N(0, 1): tf.random_normal's defaults, Finn et al.'s Omniglot head
#   truncated-normal  N(0, 0.01^2) redrawn beyond two standard deviations: tf.truncated_normal(stddev=0.01),
#                     Finn et al.'s sinusoid output layer
#   zero              all zero
HEAD_INITS = ("xavier", "normal", "truncated-normal", "zero")
TRUNCATED_NORMAL_STD = 0.01


def support_loss_fn(task: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy for N-way classification, mean squared error for regression."""
    return F.cross_entropy if task == "classification" else F.mse_loss


@dataclass(frozen=True)
class GradientInner:
    """MAML's inner loop. `steps_test` and `step_size` follow Finn et al. per dataset (docs/protocol.md)."""

    n_outputs: int
    task: str = "classification"
    steps_train: int = 1
    steps_test: int = 3
    step_size: float = 0.4
    first_order: bool = False
    bn_mode: str = "transductive"
    head_init: str = "xavier"  # one of HEAD_INITS
    name: str = field(default="gradient", init=False)

    # registry (benchmarks/learner/registry.py, docs/adding-a-method.md)
    config_prefix: ClassVar[str] = "inner"  # own fields from inner.<field>
    task_kinds: ClassVar[tuple[str, ...]] = TASK_KINDS
    order: ClassVar[str] = "second"  # "first" with first_order
    batched_on_cuda: ClassVar[bool] = True  # the grouped network is fastest on CUDA (reports/perf/h100)
    assumptions: ClassVar[tuple[tuple[str, dict[str, object]], ...]] = (
        ("maml-adapt-all-parameters", {}),
        ("maml-first-order-detach", {"first_order": True}),
    )

    def __post_init__(self) -> None:
        if self.bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {self.bn_mode!r}")
        if self.task not in TASK_KINDS:
            raise ValueError(f"task must be one of {TASK_KINDS}, got {self.task!r}")
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {HEAD_INITS}, got {self.head_init!r}")
        if self.steps_train < 0 or self.steps_test < 0:
            raise ValueError("inner step counts must be >= 0")

    def init_parameters(self, feature_dim: int, generator: torch.Generator) -> Params:
        """The linear head: weight drawn as `head_init` says (HEAD_INITS), zero bias."""
        weight = torch.zeros(self.n_outputs, feature_dim)
        if self.head_init == "xavier":
            torch.nn.init.xavier_uniform_(weight, generator=generator)
        elif self.head_init == "normal":
            torch.nn.init.normal_(weight, 0.0, 1.0, generator=generator)
        elif self.head_init == "truncated-normal":
            bound = 2 * TRUNCATED_NORMAL_STD
            torch.nn.init.trunc_normal_(weight, 0.0, TRUNCATED_NORMAL_STD, -bound, bound, generator=generator)
        return {"head.weight": weight, "head.bias": torch.zeros(self.n_outputs)}

    def _outputs(
        self, features: FeatureFn, params: Params, x: Tensor, stats_rows: int | None, twice: bool = False
    ) -> Tensor:
        return F.linear(features(params, x, stats_rows, twice), params["head.weight"], params["head.bias"])

    def _query_outputs(
        self, features: FeatureFn, params: Params, support_x: Tensor, query_x: Tensor, rows: int = 0
    ) -> Tensor:
        """Query outputs after adaptation; `rows`: the dimension of the examples (1 when a leading
        task dimension is present). Inductive batch norm takes its statistics from the support rows."""
        outputs = self._outputs if rows == 0 else self._outputs_tasks
        if self.bn_mode == "transductive":
            return outputs(features, params, query_x, None)
        n_support = support_x.shape[rows]
        both = torch.cat([support_x, query_x], dim=rows)
        return outputs(features, params, both, n_support).narrow(rows, n_support, query_x.shape[rows])

    def adapt(
        self, features: FeatureFn, params: Params, support_x: Tensor, support_y: Tensor, training: bool
    ) -> Params:
        """theta after the inner steps. At test time (training=False) the steps are never differentiated."""
        loss_fn = support_loss_fn(self.task)
        twice = self._differentiated_twice(training)

        def support_loss(p: Params) -> Tensor:
            return loss_fn(self._outputs(features, p, support_x, None, twice), support_y)

        return self._descend(support_loss, params, training)

    def _differentiated_twice(self, training: bool) -> bool:
        """Whether the support passes are differentiated twice: second order, in training."""
        return training and not self.first_order

    def _descend(self, support_loss: Callable[[Params], Tensor], params: Params, training: bool) -> Params:
        steps = self.steps_train if training else self.steps_test
        detach_inner = not self._differentiated_twice(training)
        fast = params
        for _ in range(steps):
            grads = torch.func.grad(support_loss)(fast)
            if detach_inner:
                grads = {k: g.detach() for k, g in grads.items()}
            fast = {k: fast[k] - self.step_size * grads[k] for k in fast}
        return fast

    def query_outputs(
        self, features: FeatureFn, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, training: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Query logits (or regression outputs) after adaptation, and per-task diagnostics (none here)."""
        fast = self.adapt(features, params, support_x, support_y, training)
        return self._query_outputs(features, fast, support_x, query_x), {}

    # --- all tasks of a meta-batch at once (MetaLearner strategy 'batched') -------------------
    def _outputs_tasks(
        self, features: FeatureFn, params: Params, x: Tensor, stats_rows: int | None, twice: bool = False
    ) -> Tensor:
        f = features(params, x, stats_rows, twice)  # [T, N, F]
        return torch.baddbmm(params["head.bias"].unsqueeze(1), f, params["head.weight"].mT)

    def query_outputs_tasks(
        self, features: FeatureFn, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, training: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """query_outputs for T tasks at once: params and data with a leading task dimension, `features`
        computing [T, N, F]; returns [T, Nq, outputs] and no diagnostics. Every task's support loss depends only on its
        own copy of the parameters, so one gradient of their sum is every task's own inner gradient."""
        tasks = support_x.shape[0]
        twice = self._differentiated_twice(training)

        def support_loss(p: Params) -> Tensor:
            outputs = self._outputs_tasks(features, p, support_x, None, twice)
            if self.task == "classification":
                return F.cross_entropy(outputs.flatten(0, 1), support_y.flatten()) * tasks
            return F.mse_loss(outputs, support_y.reshape(outputs.shape)) * tasks

        fast = self._descend(support_loss, params, training)
        return self._query_outputs(features, fast, support_x, query_x, rows=1), {}
