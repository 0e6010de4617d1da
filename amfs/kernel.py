"""RBF kernel and the batched closed-form kernel-ridge solve of I-AMFS.

    K = k(F_S, F_S),  k(a, b) = exp(-||a - b||^2 / (2 sigma^2)),  alpha = (K + lambda I)^-1 Y_S

The solve is a Cholesky factorisation. K + lambda I is positive definite in exact arithmetic, but in
float32 with lambda near 0 and duplicate support points (Omniglot has identical drawings) it may not
be numerically. Then jitter is added, growing tenfold per retry. The retry decisions are made on
detached values with a fixed number of tensor operations and no host synchronisation, so the same
code runs batched, vmapped over tasks, or inside a CUDA graph; the retries are returned as counts.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

JITTER_BASE = 1e-6  # relative to the mean diagonal of K + lambda I
JITTER_GROWTH = 10.0


class KernelSolve(NamedTuple):
    alpha: Tensor  # [..., n, m]
    retries: Tensor  # [...] int32: jitter increases needed by each system
    failed: Tensor  # [...] bool: still not positive definite after the last retry


def one_hot(labels: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    """One-hot rows for int labels; unlike F.one_hot it needs no value check, so it runs under vmap."""
    return (labels.unsqueeze(-1) == torch.arange(n_classes, device=labels.device)).to(dtype)


def rbf_kernel(a: Tensor, b: Tensor, sigma: Tensor) -> Tensor:
    """k(a_i, b_j) for a [..., n, d], b [..., m, d] -> [..., n, m].

    Uses explicit differences rather than the |a|^2 + |b|^2 - 2ab expansion: exact zeros on the
    diagonal of k(F_S, F_S) and no cancellation, at a cost that is negligible for few-shot sizes.
    """
    sq_dist = (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)
    return torch.exp(-sq_dist / (2.0 * sigma * sigma))


def kernel_ridge_solve(kernel: Tensor, targets: Tensor, lam: Tensor, max_retries: int = 6) -> KernelSolve:
    """alpha = (K + lam I)^-1 Y for a batch of systems K [..., n, n], Y [..., n, m]; differentiable
    in K, lam and Y."""
    n = kernel.shape[-1]
    eye = torch.eye(n, dtype=kernel.dtype, device=kernel.device)
    system = kernel + lam * eye
    with torch.no_grad():
        probe = system.detach()
        base = JITTER_BASE * probe.diagonal(dim1=-2, dim2=-1).mean(-1)
        jitter = torch.zeros_like(base)
        retries = torch.zeros_like(base, dtype=torch.int32)
        for _ in range(max_retries):
            info = torch.linalg.cholesky_ex(probe + jitter[..., None, None] * eye).info
            bad = info > 0
            jitter = torch.where(bad, torch.where(jitter > 0, jitter * JITTER_GROWTH, base), jitter)
            retries = retries + bad.to(torch.int32)
        failed = torch.linalg.cholesky_ex(probe + jitter[..., None, None] * eye).info > 0
    chol = torch.linalg.cholesky_ex(system + jitter[..., None, None] * eye).L
    # Two triangular solves rather than torch.cholesky_solve: same result, and on CUDA the batched
    # cholesky_solve goes through a MAGMA kernel that cannot be captured in a CUDA graph.
    half = torch.linalg.solve_triangular(chol, targets, upper=False)
    alpha = torch.linalg.solve_triangular(chol.mT, half, upper=True)
    return KernelSolve(alpha, retries, failed)
