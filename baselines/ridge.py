"""A linear ridge head (R2-D2, Bertinetto et al. 2019; MetaOptNet-RR, Lee et al. 2019): the closed form
of I-AMFS with the linear kernel k(a, b) = a . b, a control that isolates what the RBF kernel adds.

    F_S = phi(X_S), F_Q = phi(X_Q)
    alpha = (F_S F_S^T + lambda I)^-1 Y_S          (Y_S one-hot for N-way, y itself for regression)
    f(X_Q) = F_Q F_S^T alpha,  logits = s * f      (regression: the outputs are f)

By the Woodbury identity f(X_Q) = F_Q W with W = (F_S^T F_S + lambda I)^-1 F_S^T Y_S, the ridge
regression weights on the support features; the dual form solves an n_S x n_S system, smaller than
d x d for few-shot tasks. Meta-parameters: the backbone and log lambda, log s. First-order variant:
alpha from detached support features, as first-order I-AMFS.

The solve is written here rather than imported from amfs (baselines and amfs are independent): the
same Cholesky factorisation with counted jitter retries, decided on detached values with a fixed
number of operations, so it runs batched, vmapped or inside a CUDA graph.
"""

from __future__ import annotations

import math
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

JITTER_BASE = 1e-6  # relative to the mean diagonal of F_S F_S^T + lambda I, as I-AMFS
JITTER_GROWTH = 10.0
RIDGE_PARAMETERS = ("ridge.log_lambda", "ridge.log_scale")


def one_hot(labels: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    """One-hot rows for int labels, by comparison (F.one_hot checks values, which vmap cannot)."""
    return (labels.unsqueeze(-1) == torch.arange(n_classes, device=labels.device)).to(dtype)


def ridge_solve(gram: Tensor, targets: Tensor, lam: Tensor, max_retries: int) -> tuple[Tensor, Tensor, Tensor]:
    """alpha = (G + lam I)^-1 Y for G [..., n, n], Y [..., n, m] by Cholesky; returns alpha, the
    jitter retries [...] (int32) and whether a system stayed non-positive-definite [...] (bool)."""
    n = gram.shape[-1]
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    system = gram + lam * eye
    with torch.no_grad():
        probe = system.detach()
        base = JITTER_BASE * probe.diagonal(dim1=-2, dim2=-1).mean(-1)
        jitter = torch.zeros_like(base)
        retries = torch.zeros_like(base, dtype=torch.int32)
        for _ in range(max_retries):
            bad = torch.linalg.cholesky_ex(probe + jitter[..., None, None] * eye).info > 0
            jitter = torch.where(bad, torch.where(jitter > 0, jitter * JITTER_GROWTH, base), jitter)
            retries = retries + bad.to(torch.int32)
        failed = torch.linalg.cholesky_ex(probe + jitter[..., None, None] * eye).info > 0
    chol = torch.linalg.cholesky_ex(system + jitter[..., None, None] * eye).L
    # two triangular solves: torch.cholesky_solve's batched CUDA kernel cannot be captured in a graph
    half = torch.linalg.solve_triangular(chol, targets, upper=False)
    return torch.linalg.solve_triangular(chol.mT, half, upper=True), retries, failed


@dataclass(frozen=True)
class RidgeInner:
    """Closed-form linear ridge adaptation. lambda and s start at `lambda_init` and `scale_init`, read
    from the config keys of I-AMFS (kernel.lambda_init, kernel.scale_init): the pair I-AMFS - ridge
    then starts from the same lambda and s and differs in the kernel alone."""

    n_outputs: int
    task: str = "classification"
    first_order: bool = False
    bn_mode: str = "transductive"
    lambda_init: float = 1.0
    scale_init: float = 10.0
    max_jitter_retries: int = 6
    name: str = field(default="ridge", init=False)

    # registry (benchmarks/learner/registry.py, docs/adding-a-method.md)
    config_prefix: ClassVar[str] = "kernel"  # own fields from kernel.<field>, shared with I-AMFS
    task_kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")
    order: ClassVar[str] = "exact"
    batched_on_cuda: ClassVar[bool] = False  # not measured: I-AMFS's choice, so the pair runs alike
    assumptions: ClassVar[tuple[tuple[str, dict[str, object]], ...]] = (
        ("ridge-one-hot", {"task": "classification"}),
        ("ridge-regression-targets", {"task": "regression"}),
        ("ridge-init-values", {}),
        ("ridge-cholesky-jitter", {}),
        ("ridge-first-order-detached-support", {"first_order": True}),
    )

    def __post_init__(self) -> None:
        if self.task not in self.task_kinds:
            raise ValueError(f"task must be one of {self.task_kinds}, got {self.task!r}")
        if self.bn_mode not in ("transductive", "inductive"):
            raise ValueError(f"bn_mode must be 'transductive' or 'inductive', got {self.bn_mode!r}")
        if self.lambda_init <= 0 or self.scale_init <= 0:
            raise ValueError("lambda_init and scale_init must be > 0")

    def init_parameters(self, feature_dim: int, generator: torch.Generator) -> Params:
        """log lambda, log s as 0-d tensors (nothing is random)."""
        return {
            "ridge.log_lambda": torch.tensor(math.log(self.lambda_init)),
            "ridge.log_scale": torch.tensor(math.log(self.scale_init)),
        }

    def _features(
        self, features: FeatureFn, params: Params, support_x: Tensor, query_x: Tensor, rows: int
    ) -> tuple[Tensor, Tensor]:
        return support_and_query_features(features, params, support_x, query_x, rows, self.bn_mode)

    def _solve_and_score(
        self, f_s: Tensor, f_q: Tensor, support_y: Tensor, log_lambda: Tensor, log_scale: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The ridge fit on the support features and its query outputs; the parameters broadcast against
        [..., n, n] (0-d for one task, [T, 1, 1] for T tasks)."""
        if self.task == "classification":
            targets = one_hot(support_y, self.n_outputs, f_s.dtype)
        else:
            targets = support_y.reshape(*support_y.shape[: f_s.dim() - 1], -1).to(f_s.dtype)
        solve_features = f_s.detach() if self.first_order else f_s
        alpha, retries, failed = ridge_solve(
            solve_features @ solve_features.mT, targets, log_lambda.exp(), self.max_jitter_retries
        )
        scores = (f_q @ f_s.mT) @ alpha
        outputs = scores * log_scale.exp() if self.task == "classification" else scores
        return outputs, {"jitter_retries": retries, "solve_failed": failed}

    def query_outputs(
        self, features: FeatureFn, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, training: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Query logits (scaled ridge scores) or regression outputs, plus solve diagnostics."""
        f_s, f_q = self._features(features, params, support_x, query_x, rows=0)
        return self._solve_and_score(f_s, f_q, support_y, *(params[k] for k in RIDGE_PARAMETERS))

    def query_outputs_tasks(
        self, features: FeatureFn, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, training: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """query_outputs for T tasks at once (MetaLearner strategy 'batched'): params and data with a
        leading task dimension; outputs [T, Nq, outputs], diagnostics [T]; one batched factorisation."""
        f_s, f_q = self._features(features, params, support_x, query_x, rows=1)
        return self._solve_and_score(f_s, f_q, support_y, *(params[k].reshape(-1, 1, 1) for k in RIDGE_PARAMETERS))
