"""Our side of `python -m benchmarks perf`: one method under one task-batching strategy, built the
way a training run builds it (runs.build.assemble: same backbone, execution, optimiser and step), timed per
meta-iteration and per test adaptation, with its meta-gradient at the initial parameters kept for
the numerics checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from benchmarks.data.tasks import TaskBatch
from benchmarks.device.execution import Execution, backend_scope
from benchmarks.learner.meta_learner import MetaLearner, StepResult
from benchmarks.perf.numerics import (
    FLOOR_FACTOR,
    FLOOR_ORDERS,
    agreement_verdict,
    empty_numerics,
    flat_gradient,
    relative_error,
    reorder_examples,
    same_function,
)
from benchmarks.perf.settings import PerfSetting
from benchmarks.perf.strategies import (
    BENCHMARK_KEY,
    eager_strategy,
    parse_strategy,
    row_precision,
    strategy_rtol,
    strategy_scope,
)
from benchmarks.perf.timing import PeakMemory, summarize, tensor_memory_mib, time_calls
from benchmarks.runs.build import Assembly, assemble

Params = dict[str, Tensor]


@dataclass
class PreparedRun:
    """A learner with its parameters, optimiser and one-call meta-iteration, ready to time."""

    config: dict[str, Any]
    execution: Execution
    learner: MetaLearner
    params: Params
    step: Callable[[], StepResult]
    initial_gradient: Tensor | None  # flat meta-gradient at the initial parameters, when asked for


def prepare_run(
    setting: PerfSetting,
    method: str,
    strategy: str,
    batch: TaskBatch,
    device: torch.device,
    seed: int,
    with_gradient: bool = True,
) -> PreparedRun:
    """Build `method` in `setting` as a training run would, with `strategy` for task batching, and
    (with_gradient) compute its meta-gradient at the initial parameters. The kernel's sigma is
    initialised from `batch`, as the runner does from its first meta-batch."""
    base, overrides = parse_strategy(strategy)
    overrides.pop(BENCHMARK_KEY, None)  # applied by measure_ours around the whole row
    # a row times what its name says: cuDNN in its default layout unless a modifier names another
    config = {**setting.config(method), "seed": seed, "strategy": base, "backbone.conv": "cudnn", **overrides}
    run = assemble(config, device)
    run.initialise_from_data(batch)
    try:
        step, initial = _step_and_gradient(run, batch, with_gradient)
    except BaseException:
        release_gradients(run.params)
        raise
    return PreparedRun(config, run.execution, run.learner, run.params, step, initial)


def _step_and_gradient(
    run: Assembly, batch: TaskBatch, with_gradient: bool
) -> tuple[Callable[[], StepResult], Tensor | None]:
    """The run's meta-update (runs.step.MetaUpdate, as training steps; a CUDA graph that cannot be
    captured fails the row) and, if asked, the flat meta-gradient at the current parameters."""
    update = run.meta_update(fallback=False)
    if run.execution.graph:
        # The first replay computes the meta-gradient at the current (initial) parameters, then steps.
        return (lambda: update(batch)), flat_gradient(update(batch).gradients)
    initial = flat_gradient(run.learner.meta_gradients(run.params, batch).gradients) if with_gradient else None
    return (lambda: update(batch)), initial


def release_gradients(params: Params) -> None:
    """Drop the .grad of every parameter. A meta-gradient computed by torch.func from parameters that
    require grad carries an autograd graph that leads back to the parameter itself; stored in .grad,
    that is a reference cycle through C++ that Python's collector cannot free, and it would keep the
    row's memory (activations included) alive into the next row."""
    for p in params.values():
        p.grad = None


def loop_gradient(setting: PerfSetting, method: str, batch: TaskBatch, device: torch.device, seed: int) -> Tensor:
    """The float32 'loop' meta-gradient at the initial parameters, untimed: the numerics reference
    when the loop strategy itself is not among the timed ones."""
    with backend_scope("fp32"):
        run = prepare_run(setting, method, "loop", batch, device, seed)
        release_gradients(run.params)
    assert run.initial_gradient is not None
    return run.initial_gradient


def initial_parameters(setting: PerfSetting, method: str, batch: TaskBatch, device: torch.device, seed: int) -> Params:
    """The 'loop' run's float32 initial parameters (detached): the common starting point of the
    float64 checks."""
    run = prepare_run(setting, method, "loop", batch, device, seed, with_gradient=False)
    return {k: v.detach() for k, v in run.params.items()}


def float64_gradient(
    setting: PerfSetting,
    method: str,
    batch: TaskBatch,
    device: torch.device,
    seed: int,
    strategy: str = "loop",
    params: Params | None = None,
) -> Tensor:
    """The meta-gradient of `strategy` (by default 'loop': the reference that tells float32
    rounding, present in every implementation, from a wrong computation) computed in float64, at
    `params` or else the strategy's own initial parameters. Pass the same `params` to compare two
    strategies as functions: the kernel's sigma is initialised from features each strategy computes
    in its own float32 order, one rounding apart. A CUDA-graph strategy is computed by the eager
    strategy it replays (eager_strategy)."""
    run = prepare_run(setting, method, eager_strategy(strategy), batch, device, seed, with_gradient=False)
    return float64_meta_gradient(run, run.params if params is None else params, batch)


def float64_meta_gradient(run: PreparedRun, params: Params, batch: TaskBatch) -> Tensor:
    """The flat meta-gradient of a prepared run's learner at `params`, parameters and images in float64."""
    params64 = {k: v.detach().double().requires_grad_(True) for k, v in params.items()}
    batch64 = TaskBatch(batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y)
    return flat_gradient(run.learner.meta_gradients(params64, batch64).gradients)


def failure_status(error: Exception) -> str:
    """A failed measurement's status: the error, on one line."""
    return f"failed ({type(error).__name__}: {' '.join(str(error).split())[:200]})"


def reordered_floor(
    setting: PerfSetting, method: str, batch: TaskBatch, device: torch.device, seed: int, exact: Tensor | None
) -> float | None:
    """The largest error against float64 of the float32 loop meta-gradient over FLOOR_ORDERS - 1
    re-orderings of the batch's examples (the batch as drawn is the loop reference itself), at the
    parameters initialised from the batch as drawn (the kernel's sigma comes from it)."""
    if exact is None:
        return None
    with backend_scope("fp32"):
        run = prepare_run(setting, method, "loop", batch, device, seed, with_gradient=False)
        try:
            gradients = [
                flat_gradient(run.learner.meta_gradients(run.params, reorder_examples(batch, seed + k)).gradients)
                for k in range(1, FLOOR_ORDERS)
            ]
        finally:
            release_gradients(run.params)
    return max(relative_error(g, exact) for g in gradients)


def gradient_agreement(
    gradient: Tensor, reference: Tensor, exact: Tensor | None, rtol: float, other_floor: float | None = None
) -> dict[str, Any]:
    """How far a float32 meta-gradient is from a float32 reference computed another way, and whether
    that is within tolerance. The tolerance is max(rtol, FLOOR_FACTOR x float32's own error on the
    meta-batch): the reference's error against the float64 gradient, or `other_floor` (other orders
    of the same sums, reordered_floor) where larger. Some meta-batches are ill-conditioned enough that
    float32 rounding alone moves the meta-gradient by more than rtol, and two correct float32
    implementations then differ by about that much too. `ok` is agreement_verdict's."""
    error = relative_error(gradient, reference)
    floor = relative_error(reference, exact) if exact is not None else None
    if floor is not None and other_floor is not None:
        floor = max(floor, other_floor)
    tolerance = rtol if floor is None else max(rtol, FLOOR_FACTOR * floor)
    return {
        "rel_err": error,
        "vs_float64": relative_error(gradient, exact) if exact is not None else None,
        "float32_floor": floor,
        "tolerance": tolerance,
        "ok": agreement_verdict(error, floor, tolerance),
    }


def measure_ours(
    setting: PerfSetting,
    method: str,
    strategy: str,
    batch: TaskBatch,
    eval_task: TaskBatch,
    device: torch.device,
    repeats: int,
    warmup: int,
    seed: int = 0,
) -> tuple[dict[str, Any], Tensor]:
    """One table row (ms per meta-iteration, adaptation ms per test episode, peak memory; the
    numerics fields are filled in by the caller) and this strategy's initial meta-gradient. The
    strategy's backend flags (precision, cuDNN autotuner) hold for this row only."""
    with strategy_scope(strategy):
        with PeakMemory(device) as memory:  # setup included: a CUDA graph's memory is drawn at capture
            run = prepare_run(setting, method, strategy, batch, device, seed)
            try:
                samples = time_calls(run.step, device, repeats, warmup)
            except BaseException:
                release_gradients(run.params)
                raise
        try:
            adapt = time_calls(lambda: run.learner.evaluate(run.params, eval_task), device, repeats, warmup)
            # a CUDA-graph replay allocates nothing and runs no operator the count could see
            tensors = None if run.execution.graph else tensor_memory_mib(run.step, device)
        finally:
            release_gradients(run.params)
    execution = run.execution.as_dict()
    row = timing_row(setting, "amfs-bench", method, strategy, execution, samples, adapt, memory.mib, tensors)
    return row, run.initial_gradient


def timing_row(
    setting: PerfSetting,
    implementation: str,
    method: str,
    strategy: str,
    execution: dict[str, Any] | None = None,
    samples: list[float] | None = None,
    adapt: list[float] | None = None,
    peak_mib: float | None = None,
    tensor_mib: float | None = None,
    status: str = "measured",
) -> dict[str, Any]:
    """One row of the perf table, ours or a peer's. A row without samples (failed, or a peer that is
    not installed) has no numbers and says why in its status."""
    return {
        "setting": setting.key,
        "implementation": implementation,
        "method": method,
        "strategy": strategy,
        "execution": execution,
        "ms": summarize(samples) if samples else None,
        "ms_samples": samples or [],
        "adapt_ms": summarize(adapt) if adapt else None,
        "adapt_ms_samples": adapt or [],
        "peak_mib": peak_mib,
        "tensor_mib": tensor_mib,
        "status": status,
        **empty_numerics(),
    }


def add_numerics(
    row: dict[str, Any],
    gradient: Tensor | None,
    loop: Tensor | None,
    exact: Tensor | None,
    other_floor: float | None = None,
    float64_error: float | None = None,
) -> None:
    """Fill a row's numerics fields: its meta-gradient against the 'loop' strategy's (float32) and
    the float64 one, within the row's tolerance (strategy_rtol; `other_floor` as gradient_agreement),
    and `float64_error`, its float64 meta-gradient against the float64 loop's from the same
    parameters (numerics_verdict). Left empty when a gradient is missing (a failed row)."""
    if gradient is None or loop is None:
        return
    agreement = gradient_agreement(gradient, loop, exact, strategy_rtol(row["strategy"]), other_floor)
    row.update(
        grad_rel_err_vs_loop=agreement["rel_err"],
        grad_rel_err_vs_float64=agreement["vs_float64"],
        float32_floor=agreement["float32_floor"],
        tolerance=agreement["tolerance"],
        float32_ok=agreement["ok"],
        float64_rel_err_vs_loop=float64_error,
        numerics_ok=numerics_verdict(agreement["ok"], float64_error, row["strategy"]),
    )


def numerics_verdict(float32_ok: bool | None, float64_error: float | None, strategy: str) -> bool | None:
    """A row's overall check. A float64 disagreement fails it whatever float32 says. A float32
    disagreement (or an inconclusive float32 check) of a full-float32 row is settled by the float64
    check: the same function, so the difference is float32 rounding. A TF32 or bf16 row's float32
    check is its accuracy statement and stands."""
    same = same_function(float64_error)
    if same is False:
        return False
    if float32_ok is True or same is None or row_precision(strategy) != "fp32":
        return float32_ok
    return True
