"""How a run executes on its device: task batching strategy, CUDA graph, convolution kernel and
matrix precision. "auto" settings resolve to measured per-device defaults (reports/perf); the
resolved values are recorded with every result, so they never change a result silently."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

# Config strategies that replay a strategy's training step from a CUDA graph. 'graph-loop' keeps the
# loop's memory (one task's activations at a time) without its per-kernel launch cost.
GRAPHED = {"graph": "vmap", "graph-batched": "batched", "graph-loop": "loop"}

# Precisions that run the backbone under autocast in a lower-precision dtype (MetaLearner.features):
# its convolutions and their gradients in bfloat16 (8-bit mantissa), everything after the features in
# float32. The backbone is where the time goes; a kernel matrix or a Cholesky solve in bfloat16 would
# not survive its rounding.
BACKBONE_DTYPES = {"bf16": torch.bfloat16}


def backbone_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of the backbone under `precision`, None for full float32 (fp32, tf32)."""
    return BACKBONE_DTYPES.get(precision)


@dataclass(frozen=True)
class Execution:
    strategy: str  # loop | vmap | batched
    graph: bool  # the whole training step replayed from a CUDA graph
    conv_impl: str  # cudnn | unfold | shifted | cudnn-nhwc | nhwc-centred
    precision: str  # fp32 | tf32 | bf16

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_execution(
    config: dict[str, Any], device: torch.device, batched_on_cuda: bool, backbone: str
) -> tuple[Execution, list[str]]:
    """The execution for a config on a device, and notes on any fallback taken. `batched_on_cuda`:
    whether the run's inner loop takes the batched network on CUDA under `auto` (its class says);
    `backbone`: 'conv4' or 'mlp' (runs.build.execution_for says both)."""
    notes: list[str] = []
    cuda = device.type == "cuda"
    strategy = config["strategy"]
    if strategy == "auto":
        # The fastest measured (reports/perf/NOTES.md, "Defaults in the code"): on the CPU the batched network for
        # Conv-4, vmap for the small MLP (no convolution to group); on a GPU, in a CUDA graph, the
        # batched network for the inner loops whose class sets batched_on_cuda (the gradient one), vmap
        # for the others.
        if cuda:
            # bf16 is never vmapped (config.VMAP_STRATEGIES): the batched network serves every inner loop
            batched = batched_on_cuda or config["precision"] in BACKBONE_DTYPES
            strategy = "graph-batched" if batched else "graph"
        elif backbone == "mlp":
            strategy = "vmap"
        else:
            strategy = "batched"
    graph = strategy in GRAPHED
    if graph:
        strategy = GRAPHED[strategy]
        if not cuda:
            notes.append(f"a CUDA graph needs CUDA; ran with '{strategy}' on the CPU")
            graph = False
    conv_impl = config["backbone.conv"]
    if conv_impl == "auto":
        # cuDNN's default layout, except the batched strategy's grouped convolutions in NHWC
        # (reports/perf/NOTES.md, "Defaults in the code"). Re-measure with `perf --strategies graph+...`.
        nhwc = "cudnn-nhwc" if cuda else "nhwc-centred"
        conv_impl = nhwc if strategy == "batched" else "cudnn"
    return Execution(strategy, graph, conv_impl, config["precision"]), notes


def apply_precision(precision: str) -> None:
    """fp32: full float32 everywhere (PyTorch otherwise lets cuDNN convolutions use TF32).
    tf32: TensorFloat-32 for convolutions and matrix products (10-bit mantissa inputs). Not the
    default: it moves the meta-gradient far beyond float32's rounding (reports/perf/NOTES.md).
    bf16: TF32 off, as fp32; the backbone's autocast is MetaLearner's (backbone_dtype)."""
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


@contextmanager
def backend_scope(precision: str, cudnn_benchmark: bool = False) -> Iterator[None]:
    """apply_precision and cuDNN's autotuner (off is PyTorch's default) for the duration of a block,
    then the previous flags again."""
    backends = torch.backends
    saved = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark
    apply_precision(precision)
    backends.cudnn.benchmark = cudnn_benchmark
    try:
        yield
    finally:
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark = saved
