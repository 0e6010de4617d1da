"""Our side of `python -m benchmarks perf`: one method under one task-batching strategy, built the
way a training run builds it (runs.build.assemble: same backbone, execution, optimiser and step), timed per
meta-iteration and per test adaptation, with its meta-gradient at the initial parameters kept for
the numerics checks."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from benchmarks.data.tasks import TaskBatch
from benchmarks.device.execution import GRAPHED, Execution, backend_scope
from benchmarks.learner.meta_learner import STRATEGIES, MetaLearner, StepResult
from benchmarks.perf.settings import PerfSetting
from benchmarks.perf.timing import PeakMemory, summarize, tensor_memory_mib, time_calls
from benchmarks.runs.build import Assembly, assemble
from benchmarks.runs.config import VMAP_STRATEGIES

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

# Not a run setting: cuDNN's autotuner (torch.backends.cudnn.benchmark), for the timed row only. It
# times several kernels per convolution shape and keeps the fastest, which may differ between runs.
BENCHMARK_KEY = "cudnn_benchmark"
# A timed strategy is a base strategy, optionally with execution modifiers: "graph+tf32",
# "vmap+unfold", "graph+unfold+tf32". Each modifier overrides one config key for that row only.
STRATEGY_MODIFIERS = {
    "tf32": ("precision", "tf32"),
    "bf16": ("precision", "bf16"),
    "unfold": ("backbone.conv", "unfold"),
    "shifted": ("backbone.conv", "shifted"),
    "bench": (BENCHMARK_KEY, "on"),
    "nhwc": ("backbone.conv", "cudnn-nhwc"),
    "nhwc-all": ("backbone.conv", "nhwc-centred"),
}
CUDA_ONLY_MODIFIERS = ("tf32", "bench")


def timed_strategies(device: torch.device) -> list[str]:
    """Every task-batching strategy of MetaLearner, plus the CUDA-graph replays of the vmap and
    batched steps (benchmarks/runs/step.py, config strategies 'graph', 'graph-batched') where the
    device is a GPU."""
    return list(STRATEGIES) + (list(GRAPHED) if device.type == "cuda" else [])


def default_strategies(device: torch.device) -> list[str]:
    """What `perf` times when not told: timed_strategies, plus on the CPU the batched strategy with
    every layer of its large passes in NHWC (`batched+nhwc-all`, device.convolutions.large_pass)."""
    return timed_strategies(device) + ([] if device.type == "cuda" else ["batched+nhwc-all"])


def parse_strategy(name: str) -> tuple[str, dict[str, str]]:
    """'graph+tf32' -> ('graph', {'precision': 'tf32'}). Raises ValueError on an unknown part."""
    base, *modifiers = name.split("+")
    unknown = [m for m in modifiers if m not in STRATEGY_MODIFIERS]
    if unknown or len(set(modifiers)) != len(modifiers):
        raise ValueError(f"strategy {name!r}: modifiers must be distinct, from {sorted(STRATEGY_MODIFIERS)}")
    return base, dict(STRATEGY_MODIFIERS[m] for m in modifiers)


def execution_strategy(execution: Execution) -> str:
    """The name of the perf row that times an execution: 'graph-batched+nhwc', 'loop', ..."""
    base = next(n for n, b in GRAPHED.items() if b == execution.strategy) if execution.graph else execution.strategy
    conv = {value: name for name, (key, value) in STRATEGY_MODIFIERS.items() if key == "backbone.conv"}
    modifiers = [conv[execution.conv_impl]] if execution.conv_impl in conv else []
    if execution.precision in REDUCED_PRECISION_RTOL:
        modifiers.append(execution.precision)
    return "+".join([base, *modifiers])


def check_strategy(name: str, device: torch.device) -> None:
    """ValueError unless `name` (with its modifiers) can be timed on `device`."""
    base, _ = parse_strategy(name)
    valid = timed_strategies(device)
    if base not in valid:
        raise ValueError(f"strategy {name!r}: {base!r} is not available on {device.type}; valid: {valid}")
    cuda_only = [m for m in name.split("+")[1:] if m in CUDA_ONLY_MODIFIERS]
    if cuda_only and device.type != "cuda":
        raise ValueError(f"strategy {name!r}: {cuda_only} needs a CUDA device")
    if row_precision(name) == "bf16" and base in VMAP_STRATEGIES:
        raise ValueError(
            f"strategy {name!r}: bf16 runs with loop, batched, graph-batched or graph-loop, not under vmap"
        )


def strategy_rtol(name: str) -> float:
    """The numerics tolerance of a row: REDUCED_PRECISION_RTOL for TF32 and bf16 rows, STRATEGY_RTOL otherwise."""
    return REDUCED_PRECISION_RTOL.get(row_precision(name), STRATEGY_RTOL)


def row_precision(name: str) -> str:
    """The precision a strategy's modifiers ask for: 'fp32' unless '+tf32' or '+bf16'."""
    return parse_strategy(name)[1].get("precision", "fp32")


def strategy_scope(strategy: str) -> AbstractContextManager[None]:
    """The backend flags a strategy's modifiers ask for (precision, cuDNN autotuner), for one row."""
    overrides = parse_strategy(strategy)[1]
    return backend_scope(overrides.get("precision", "fp32"), BENCHMARK_KEY in overrides)


def flat_gradient(gradients: Params) -> Tensor:
    """All gradients as one float64 CPU vector, in sorted parameter-name order."""
    return torch.cat([gradients[k].detach().reshape(-1).double().cpu() for k in sorted(gradients)])


def relative_error(value: Tensor, reference: Tensor) -> float:
    """||value - reference|| / ||reference|| (absolute error when the reference is zero)."""
    scale = float(reference.norm())
    diff = float((value - reference).norm())
    return diff / scale if scale > 0 else diff


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


def eager_strategy(name: str) -> str:
    """The strategy a CUDA-graph row replays, computed eagerly: 'graph-batched+nhwc' -> 'batched+nhwc'.
    Other names are returned unchanged."""
    base, *modifiers = name.split("+")
    return "+".join([GRAPHED.get(base, base), *modifiers])


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


def reorder_examples(batch: TaskBatch, seed: int) -> TaskBatch:
    """The same tasks with each task's support and query examples in another (seeded) order: every
    method's meta-gradient is the same function of them, but float32 sums them in another order."""
    generator = torch.Generator().manual_seed(seed)
    support = torch.randperm(batch.support_x.shape[1], generator=generator).to(batch.support_x.device)
    query = torch.randperm(batch.query_x.shape[1], generator=generator).to(batch.query_x.device)
    x_s, y_s, x_q, y_q = batch.tensors()
    return TaskBatch(x_s[:, support], y_s[:, support], x_q[:, query], y_q[:, query])


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


def agreement_verdict(error: float, floor: float | None, tolerance: float) -> bool | None:
    """False beyond the tolerance; None (inconclusive) within it, unless exactly equal, when float32
    itself is off by more than FLOOR_LIMIT on this meta-batch; True otherwise."""
    if error > tolerance:
        return False
    if error == 0.0:  # bit for bit the same float32 result: the same computation, however wide the floor
        return True
    return None if floor is not None and floor > FLOOR_LIMIT else True


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
