"""I-AMFS: the closed-form RBF kernel-ridge inner loop (docs/methods.md, "I-AMFS kernel-ridge inner loop").

    F_S = phi(X_S), F_Q = phi(X_Q)
    alpha = (k(F_S, F_S) + lambda I)^-1 Y_S        (Y_S one-hot for N-way, y itself for regression)
    f(X_Q) = k(F_Q, F_S) alpha,  logits = s * f    (regression: the outputs are f)

One solve per task and no inner gradient steps. Meta-parameters: the backbone theta and
log sigma, log lambda, log s. First-order variant (an assumption of this suite): alpha is computed
from detached support features, so the meta-gradient reaches theta only through k(F_Q, F_S).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from amfs.kernel import kernel_ridge_solve, one_hot, rbf_kernel

Params = dict[str, Tensor]
# features(params, x, stats_rows[, differentiated_twice]): the backbone's features of x (batch-norm
# statistics from all rows, or the first stats_rows); no pass here is differentiated twice.
FeatureFn = Callable[..., Tensor]

SIGMA_INITS = ("median", "sqrt_d")
KERNEL_PARAMETERS = ("kernel.log_sigma", "kernel.log_lambda", "kernel.log_scale")


@dataclass(frozen=True)
class KernelInner:
    """Closed-form kernel-ridge adaptation. `sigma_init`: 'sqrt_d' sets sigma = sqrt(d) at
    construction; 'median' sets it from the median pairwise feature distance of the first training
    meta-batch (`data_dependent_init`). Both are assumptions, recorded with every result."""

    n_outputs: int
    task: str = "classification"
    first_order: bool = False
    bn_mode: str = "transductive"
    sigma_init: str = "median"
    lambda_init: float = 1.0
    scale_init: float = 10.0
    max_jitter_retries: int = 6
    name: str = field(default="kernel", init=False)

    # registry (benchmarks/learner/registry.py, docs/adding-a-method.md)
    config_prefix: ClassVar[str] = "kernel"  # own fields from kernel.<field>
    task_kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")
    order: ClassVar[str] = "exact"  # "first" with first_order
    batched_on_cuda: ClassVar[bool] = False  # neither strategy wins everywhere on CUDA: vmap (reports/perf/h100)
    assumptions: ClassVar[tuple[tuple[str, dict[str, object]], ...]] = (
        ("kernel-ridge-one-hot", {"task": "classification"}),
        ("kernel-regression-targets", {"task": "regression"}),
        ("kernel-one-solve", {}),
        ("kernel-learned-log-parameters", {}),
        ("kernel-sigma-median", {"sigma_init": "median"}),
        ("kernel-sigma-sqrt-d", {"sigma_init": "sqrt_d"}),
        ("kernel-init-values", {}),
        ("kernel-cholesky-jitter", {}),
        ("kernel-first-order-detached-support", {"first_order": True}),
    )

    def __post_init__(self) -> None:
        if self.sigma_init not in SIGMA_INITS:
            raise ValueError(f"sigma_init must be one of {SIGMA_INITS}, got {self.sigma_init!r}")
        if self.bn_mode not in ("transductive", "inductive"):
            raise ValueError(f"bn_mode must be 'transductive' or 'inductive', got {self.bn_mode!r}")
        if self.lambda_init <= 0 or self.scale_init <= 0:
            raise ValueError("lambda_init and scale_init must be > 0")

    def init_parameters(self, feature_dim: int, generator: torch.Generator) -> Params:
        """log sigma, log lambda, log s as 0-d tensors (the generator is unused: nothing is random)."""
        return {
            "kernel.log_sigma": torch.tensor(0.5 * math.log(feature_dim)),
            "kernel.log_lambda": torch.tensor(math.log(self.lambda_init)),
            "kernel.log_scale": torch.tensor(math.log(self.scale_init)),
        }

    @torch.no_grad()
    def data_dependent_init(self, features: FeatureFn, params: Params, support_x: Tensor, query_x: Tensor) -> Params:
        """With sigma_init='median': log sigma from the median pairwise distance between the features
        of one training meta-batch ([T, n, ...] inputs). Otherwise nothing changes."""
        if self.sigma_init != "median":
            return {}
        x = torch.cat([support_x, query_x], dim=1).flatten(0, 1)
        f = features(params, x, None)
        dist = torch.cdist(f, f)
        off_diagonal = dist[~torch.eye(len(f), dtype=torch.bool, device=f.device)]
        median = off_diagonal.median().clamp_min(1e-6)
        return {"kernel.log_sigma": torch.log(median).to(params["kernel.log_sigma"].dtype)}

    def _targets(self, support_y: Tensor, dtype: torch.dtype, rows: int) -> Tensor:
        if self.task == "classification":
            return one_hot(support_y, self.n_outputs, dtype)
        return support_y.reshape(*support_y.shape[: rows + 1], -1).to(dtype)

    def _features(
        self, features: FeatureFn, params: Params, support_x: Tensor, query_x: Tensor, rows: int
    ) -> tuple[Tensor, Tensor]:
        """Support and query features; `rows`: the dimension of the examples (1 with a task dimension)."""
        n = support_x.shape[rows]
        if self.bn_mode == "transductive":
            return features(params, support_x, None), features(params, query_x, None)
        both = features(params, torch.cat([support_x, query_x], dim=rows), n)
        return both.narrow(rows, 0, n), both.narrow(rows, n, query_x.shape[rows])

    def _solve_and_score(
        self, f_s: Tensor, f_q: Tensor, support_y: Tensor, log_sigma: Tensor, log_lambda: Tensor, log_scale: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The kernel-ridge fit on the support features and its query outputs; the kernel parameters
        broadcast against [..., n, n] (0-d for one task, [T, 1, 1] for T tasks)."""
        sigma = log_sigma.exp()
        solve_features = f_s.detach() if self.first_order else f_s
        solve = kernel_ridge_solve(
            rbf_kernel(solve_features, solve_features, sigma),
            self._targets(support_y, f_s.dtype, f_s.dim() - 2),
            log_lambda.exp(),
            self.max_jitter_retries,
        )
        scores = rbf_kernel(f_q, f_s, sigma) @ solve.alpha
        outputs = scores * log_scale.exp() if self.task == "classification" else scores
        return outputs, {"jitter_retries": solve.retries, "solve_failed": solve.failed}

    def query_outputs(
        self, features: FeatureFn, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, training: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Query logits (scaled kernel-ridge scores) or regression outputs, plus solve diagnostics."""
        f_s, f_q = self._features(features, params, support_x, query_x, rows=0)
        return self._solve_and_score(f_s, f_q, support_y, *(params[k] for k in KERNEL_PARAMETERS))

    def query_outputs_tasks(
        self, features: FeatureFn, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, training: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """query_outputs for T tasks at once (MetaLearner strategy 'batched'): params and data with a
        leading task dimension, `features` computing [T, N, F]; outputs [T, Nq, outputs] and
        diagnostics [T]. The solves are one batched Cholesky factorisation."""
        f_s, f_q = self._features(features, params, support_x, query_x, rows=1)
        return self._solve_and_score(f_s, f_q, support_y, *(params[k].reshape(-1, 1, 1) for k in KERNEL_PARAMETERS))
