"""The composite regularizer (docs/methods.md, "Composite regularizer"), per task:

    R = L_Q + mu_sign * mu * ||grad_f L_Q||^2 + gamma_sign * gamma * I_hat(f; D_Q)

- ||grad_f L_Q||^2: squared norm of the gradient of each query point's loss with respect to its
  prediction, averaged over query points. Cross-entropy: softmax(z) - onehot(y); squared error:
  2 (f - y). Written in closed form so it stays differentiable for the meta-gradient.
- I_hat = H(mean_x p(y|x)) - mean_x H(p(y|x)) from the softmax of the query logits: the mutual
  information between query inputs and predicted labels. Defined for classification only; for
  regression the term is zero (an assumption, listed in reports).

The default signs (+, +) are this suite's reading of the summary; the printed minus sign on the
gradient-norm term is available as mu_sign = -1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from amfs.kernel import one_hot


def prediction_gradient_sq_norm(outputs: Tensor, targets: Tensor, task: str) -> Tensor:
    """mean over query points of ||d loss_i / d outputs_i||^2."""
    if task == "classification":
        residual = F.softmax(outputs, dim=-1) - one_hot(targets, outputs.shape[-1], outputs.dtype)
    else:
        residual = 2.0 * (outputs - targets.reshape(outputs.shape))
    return residual.pow(2).sum(-1).mean()


def prediction_information(logits: Tensor) -> Tensor:
    """I_hat = H(mean_x p) - mean_x H(p), in nats."""
    log_p = F.log_softmax(logits, dim=-1)
    p = log_p.exp()
    mean_p = p.mean(0)
    marginal_entropy = -(mean_p * torch.log(mean_p.clamp_min(1e-12))).sum()
    conditional_entropy = -(p * log_p).sum(-1).mean()
    return marginal_entropy - conditional_entropy


@dataclass(frozen=True)
class CompositeRegularizer:
    mu: float = 0.0
    gamma: float = 0.0
    mu_sign: float = 1.0
    gamma_sign: float = 1.0

    def __post_init__(self) -> None:
        if self.mu < 0 or self.gamma < 0:
            raise ValueError("mu and gamma are magnitudes (>= 0); use mu_sign / gamma_sign to flip a term")
        if self.mu_sign not in (1.0, -1.0) or self.gamma_sign not in (1.0, -1.0):
            raise ValueError("mu_sign and gamma_sign must be +1 or -1")

    def __call__(self, outputs: Tensor, targets: Tensor, task: str) -> Tensor:
        """The penalty added to the task's query loss (0 when mu = gamma = 0)."""
        penalty = outputs.new_zeros(())
        if self.mu > 0:
            penalty = penalty + self.mu_sign * self.mu * prediction_gradient_sq_norm(outputs, targets, task)
        if self.gamma > 0 and task == "classification":
            penalty = penalty + self.gamma_sign * self.gamma * prediction_information(outputs)
        return penalty
