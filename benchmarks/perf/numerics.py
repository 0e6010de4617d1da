"""The numerics checks of `perf`: how close a row's meta-gradient must be to the float32 loop's (its
tolerance, or float32's own error on the batch where that is larger), and whether it computes the
same function in float64."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from benchmarks.data.tasks import TaskBatch

Params = dict[str, Tensor]


# Strategies computing the same meta-gradient must agree to this relative error in float32, or to
# FLOOR_FACTOR times float32's own error on the meta-batch where that is larger (gradient_agreement).
STRATEGY_RTOL = 1e-4


FLOOR_FACTOR = 10.0


# float32's own error on a meta-batch is taken as the largest error against float64 of the float32
# loop meta-gradient over the batch as drawn and FLOOR_ORDERS - 1 re-orderings of each task's
# examples: the same function in exact arithmetic, summed in other orders. One order alone can be
# lucky (a ReLU input within rounding of zero changes sides in some orders only: reports/perf/NOTES.md,
# "The float32 floor"). Each order costs one float32 loop meta-gradient.
FLOOR_ORDERS = 12


# Above this float32 floor, agreement within the (then wide) tolerance proves little: 'inconclusive'.
FLOOR_LIMIT = 1e-2


# A strategy computes the same function as the loop if, in float64 from the same parameters, its
# meta-gradient is the float64 loop meta-gradient to this relative error: float64 rounding (unit
# roundoff 1.1e-16), amplified as much as float32's ever was on a perf batch, stays orders of
# magnitude below it, and a different computation (a wrong index, a dropped term) lands far above
# (reports/perf/NOTES.md, "Every row in float64"). It settles what the float32 comparison cannot on an
# ill-conditioned meta-batch.
SAME_FUNCTION_RTOL = 1e-9


# A row timed with TensorFloat-32 matrix units (inputs rounded to a 10-bit mantissa, unit roundoff
# 2^-11) must give the float32 loop meta-gradient to this relative error (or FLOOR_FACTOR x float32's
# own error, as above): the accuracy tolerance under which TF32 counts as the same computation.
TF32_RTOL = 1e-2


# The same for a row whose backbone runs in bfloat16 (precision bf16: 8-bit mantissa, unit roundoff
# 2^-9, four times TF32's, on activations and gradients as well as on the products' inputs).
BF16_RTOL = 5e-2


# tolerance of each reduced precision; full float32 rows have STRATEGY_RTOL
REDUCED_PRECISION_RTOL = {"tf32": TF32_RTOL, "bf16": BF16_RTOL}


def flat_gradient(gradients: Params) -> Tensor:
    """All gradients as one float64 CPU vector, in sorted parameter-name order."""
    return torch.cat([gradients[k].detach().reshape(-1).double().cpu() for k in sorted(gradients)])


def relative_error(value: Tensor, reference: Tensor) -> float:
    """||value - reference|| / ||reference|| (absolute error when the reference is zero)."""
    scale = float(reference.norm())
    diff = float((value - reference).norm())
    return diff / scale if scale > 0 else diff


def reorder_examples(batch: TaskBatch, seed: int) -> TaskBatch:
    """The same tasks with each task's support and query examples in another (seeded) order: every
    method's meta-gradient is the same function of them, but float32 sums them in another order."""
    generator = torch.Generator().manual_seed(seed)
    support = torch.randperm(batch.support_x.shape[1], generator=generator).to(batch.support_x.device)
    query = torch.randperm(batch.query_x.shape[1], generator=generator).to(batch.query_x.device)
    x_s, y_s, x_q, y_q = batch.tensors()
    return TaskBatch(x_s[:, support], y_s[:, support], x_q[:, query], y_q[:, query])


def agreement_verdict(error: float, floor: float | None, tolerance: float) -> bool | None:
    """False beyond the tolerance; None (inconclusive) within it, unless exactly equal, when float32
    itself is off by more than FLOOR_LIMIT on this meta-batch; True otherwise."""
    if error > tolerance:
        return False
    if error == 0.0:  # bit for bit the same float32 result: the same computation, however wide the floor
        return True
    return None if floor is not None and floor > FLOOR_LIMIT else True


def empty_numerics() -> dict[str, Any]:
    """The numerics fields of a row before (or without) a comparison."""
    return {
        "grad_rel_err_vs_loop": None,
        "grad_rel_err_vs_float64": None,
        "float32_floor": None,
        "tolerance": None,
        "float32_ok": None,
        "float64_rel_err_vs_loop": None,
        "numerics_ok": None,
    }


def same_function(float64_error: float | None) -> bool | None:
    """Whether a row's float64 meta-gradient is the float64 loop's (None: not computed)."""
    return None if float64_error is None else float64_error <= SAME_FUNCTION_RTOL
