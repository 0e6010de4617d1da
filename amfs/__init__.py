"""The methods of "Fast Adaptation with Kernel and Gradient based Meta Learning" (arXiv 2411.00404):
the RBF kernel-ridge inner loop (I-AMFS), the cosine-weighted outer loop (O-AMFS) and the composite
regularizer, each as docs/methods.md defines them."""

from amfs.cosine_outer import CosineWeightedOuter, cosine_task_weights
from amfs.kernel import KernelSolve, kernel_ridge_solve, rbf_kernel
from amfs.kernel_inner import KernelInner
from amfs.regularizer import CompositeRegularizer

__all__ = [
    "CompositeRegularizer",
    "CosineWeightedOuter",
    "KernelInner",
    "KernelSolve",
    "cosine_task_weights",
    "kernel_ridge_solve",
    "rbf_kernel",
]
