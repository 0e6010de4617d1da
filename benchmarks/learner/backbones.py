"""Shared backbones: Conv-4 (Finn et al. 2017 / Vinyals et al. 2016) and the sinusoid MLP.

Every method of a run gets bit-identical backbone weights for the same seed: weights are drawn from
a private generator seeded by the run seed, never from the global RNG. Heads and kernel parameters
are drawn afterwards from a separate generator, so they cannot shift the backbone's draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.device.convolutions import (
    CONV_FUNCTIONS,
    CONV_IMPLS,
    centre_channels,
    contiguous_gradient,
    layer_nhwc,
    whole_pass_nhwc,
)


def batch_norm(
    h: Tensor, weight: Tensor, bias: Tensor, stats_rows: int | None, fused: bool = False, eps: float = 1e-5
) -> Tensor:
    """Batch normalisation from batch statistics, never running statistics.

    `stats_rows=None`: statistics of the whole batch (transductive). `stats_rows=n`: statistics of
    the first n rows only (the support set), applied to every row, so a query example's output does
    not depend on the other query examples (inductive).

    Written out unless `fused`: under torch.func, grad(vmap(grad(...))) through F.batch_norm
    returns wrong second-order gradients (PyTorch 2.14; found by the finite-difference test in
    tests/baselines/test_maml.py), while these elementary operations are differentiated correctly. Without
    vmap (the loop strategy), and under vmap in a pass differentiated only once (first-order
    gradients, the kernel inner loop, MAML's query pass), F.batch_norm is right and, fused, several
    times faster on the CPU and saves one tensor for backward where the written-out form saves three.
    """
    if fused and stats_rows is None:
        return F.batch_norm(h, None, None, weight, bias, training=True, eps=eps)
    reduce_dims = [0, *range(2, h.dim())]
    ref = h if stats_rows is None else h[:stats_rows]
    var, mean = torch.var_mean(ref, reduce_dims, correction=0, keepdim=True)
    shape = [1, -1] + [1] * (h.dim() - 2)
    return (h - mean) * (torch.rsqrt(var + eps) * weight.view(shape)) + bias.view(shape)


class Conv4(nn.Module):
    """Four blocks of 3x3 conv -> batch norm -> ReLU, then either 2x2 max-pool per block
    (mini-ImageNet variant: features flattened) or stride-2 convolutions (MAML's Omniglot variant:
    features averaged over space, as in Finn et al.'s code)."""

    def __init__(
        self,
        in_channels: int = 1,
        filters: int = 64,
        pooling: str = "strided",
        image_size: int = 28,
        conv_impl: str = "cudnn",
    ):
        super().__init__()
        if pooling not in ("strided", "max"):
            raise ValueError(f"pooling must be 'strided' or 'max', got {pooling!r}")
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
        self.pooling = pooling
        self.conv_impl = conv_impl
        self.convs = nn.ParameterList()
        self.norms = nn.ParameterList()
        channels = in_channels
        size = image_size
        for _ in range(4):
            self.convs.append(nn.Parameter(torch.empty(filters, channels, 3, 3)))
            self.norms.append(nn.Parameter(torch.ones(filters)))
            self.norms.append(nn.Parameter(torch.zeros(filters)))
            channels = filters
            size = (size - 1) // 2 + 1 if pooling == "strided" else size // 2
        if size < 1:
            raise ValueError(f"image size {image_size} is too small for four {pooling} blocks")
        self.feature_dim = filters if pooling == "strided" else filters * size * size

    def forward(self, x: Tensor, stats_rows: int | None = None, fused_norm: bool = False) -> Tensor:
        h = x
        stride = 2 if self.pooling == "strided" else 1
        for i, weight in enumerate(self.convs):
            if self.conv_impl in CONV_FUNCTIONS:
                h = CONV_FUNCTIONS[self.conv_impl](h, weight, stride)
            else:
                h = F.conv2d(h, weight, stride=stride, padding=1)
            h = batch_norm(h, self.norms[2 * i], self.norms[2 * i + 1], stats_rows, fused_norm)
            h = F.relu(h)
            if self.pooling == "max":
                h = F.max_pool2d(h, 2)
        return h.mean(dim=(2, 3)) if self.pooling == "strided" else h.flatten(1)

    def forward_tasks(
        self, params: dict[str, Tensor], x: Tensor, stats_rows: int | None = None, differentiated_twice: bool = False
    ) -> Tensor:
        """Every task with its own weights in one network: params have a leading task dimension T,
        x is [T, N, C, H, W]; returns features [T, N, F], task t's equal to forward() with its weights.

        The tasks are laid side by side along the channels ([N, T*C, H, W]), so a convolution with
        groups=T applies each task's kernel to its own channels only, and batch norm's per-channel
        statistics are per task and channel, as forward() computes them per task. No vmap is
        involved, so the fused batch norm is exact here. The convolutions are always the library's
        grouped ones (cuDNN, oneDNN on the CPU), in the memory layout device.convolutions chooses
        by conv_impl, the pass's size and `differentiated_twice` (whether the pass is differentiated
        twice: second-order MAML's support passes in training); an NHWC pass centres each batch
        norm's input first (centre_channels) for its precision."""
        t, n = x.shape[:2]
        h = x.transpose(0, 1).reshape(n, t * x.shape[2], *x.shape[3:])
        stride = 2 if self.pooling == "strided" else 1
        all_nhwc = whole_pass_nhwc(self.conv_impl, n, *x.shape[-2:], differentiated_twice)
        for i in range(4):
            weight = params[f"convs.{i}"]
            weight = weight.reshape(-1, *weight.shape[2:])
            if layer_nhwc(self.conv_impl, i, all_nhwc):
                h = h.contiguous(memory_format=torch.channels_last)
            if all_nhwc:  # in the input's layout, or the convolution converts it on every call
                weight = contiguous_gradient(weight).contiguous(memory_format=torch.channels_last)
            h = F.conv2d(h, weight, stride=stride, padding=1, groups=t)
            if all_nhwc:
                h = centre_channels(h)
            scale, shift = params[f"norms.{2 * i}"].reshape(-1), params[f"norms.{2 * i + 1}"].reshape(-1)
            h = F.relu(batch_norm(h, scale, shift, stats_rows, fused=True))
            if self.pooling == "max":
                h = F.max_pool2d(h, 2)
        features = h.mean(dim=(2, 3)) if self.pooling == "strided" else h.flatten(1)
        return features.reshape(n, t, -1).transpose(0, 1)


class MLP(nn.Module):
    """The sinusoid-regression network of Finn et al. 2017 without its output layer:
    1 -> 40 -> 40 with ReLU; the output layer is the method's head."""

    def __init__(self, in_features: int = 1, hidden: tuple[int, ...] = (40, 40)):
        super().__init__()
        self.layers = nn.ModuleList()
        width = in_features
        for h in hidden:
            self.layers.append(nn.Linear(width, h))
            width = h
        self.feature_dim = width

    def forward(self, x: Tensor, stats_rows: int | None = None, fused_norm: bool = False) -> Tensor:
        for layer in self.layers:
            x = F.relu(layer(x))
        return x

    def forward_tasks(
        self, params: dict[str, Tensor], x: Tensor, stats_rows: int | None = None, differentiated_twice: bool = False
    ) -> Tensor:
        """forward() for T tasks at once, each with its own weights (leading dimension T): x [T, N, in]."""
        for i in range(len(self.layers)):
            x = F.relu(torch.baddbmm(params[f"layers.{i}.bias"].unsqueeze(1), x, params[f"layers.{i}.weight"].mT))
        return x


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is; resolved from a run config."""

    kind: str = "conv4"  # conv4 | mlp
    in_channels: int = 1
    image_size: int = 28
    filters: int = 64
    pooling: str = "strided"
    conv_impl: str = "cudnn"


def build_backbone(spec: BackboneSpec, seed: int) -> tuple[nn.Module, dict[str, Tensor]]:
    """The backbone module and its initial parameters (a fresh dict, prefixed 'backbone.')."""
    if spec.kind == "conv4":
        module: nn.Module = Conv4(spec.in_channels, spec.filters, spec.pooling, spec.image_size, spec.conv_impl)
    elif spec.kind == "mlp":
        module = MLP(spec.in_channels)
    else:
        raise ValueError(f"unknown backbone {spec.kind!r}; valid: conv4, mlp")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p, generator=generator)
            elif name.startswith("norms") and (int(name.split(".")[1]) % 2 == 0):
                p.fill_(1.0)
            else:
                p.zero_()
    params = {f"backbone.{k}": v.detach().clone() for k, v in module.named_parameters()}
    return module, params


def backbone_forward_tasks(
    module: nn.Module,
    params: dict[str, Tensor],
    x: Tensor,
    stats_rows: int | None = None,
    differentiated_twice: bool = False,
) -> Tensor:
    """The backbone for T tasks at once: 'backbone.' entries with a leading task dimension, x [T, N, ...]."""
    own = {k[len("backbone.") :]: v for k, v in params.items() if k.startswith("backbone.")}
    return module.forward_tasks(own, x, stats_rows, differentiated_twice)


def backbone_forward(
    module: nn.Module, params: dict[str, Tensor], x: Tensor, stats_rows: int | None = None, fused_norm: bool = False
) -> Tensor:
    """Run the backbone with the 'backbone.'-prefixed entries of a parameter dict."""
    own = {k[len("backbone.") :]: v for k, v in params.items() if k.startswith("backbone.")}
    return torch.func.functional_call(module, own, (x,), {"stats_rows": stats_rows, "fused_norm": fused_norm})
