"""The strategies `perf` times: a task-batching strategy of the runs (loop, vmap, batched, and their
CUDA-graph replays), optionally with execution modifiers that override one setting for that row only
(`graph+tf32`, `batched+nhwc-all`, ...), and the numerics tolerance each row is held to."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from benchmarks.device.execution import GRAPHED, Execution, backend_scope
from benchmarks.learner.meta_learner import STRATEGIES
from benchmarks.perf.numerics import REDUCED_PRECISION_RTOL, STRATEGY_RTOL
from benchmarks.runs.config import VMAP_STRATEGIES

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


def eager_strategy(name: str) -> str:
    """The strategy a CUDA-graph row replays, computed eagerly: 'graph-batched+nhwc' -> 'batched+nhwc'.
    Other names are returned unchanged."""
    base, *modifiers = name.split("+")
    return "+".join([GRAPHED.get(base, base), *modifiers])
