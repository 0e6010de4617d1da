"""How a 3x3 convolution is computed and in which memory layout: every formulation here computes
the same function as F.conv2d (tests/learner/test_backbones.py); the choice (`backbone.conv`,
device.execution) changes time only. The measurements behind the defaults are in
reports/perf/NOTES.md."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def centre_channels(h: Tensor) -> Tensor:
    """h minus a per-channel constant (the first row's spatial mean, not differentiated): batch norm's
    output is exactly the same function of h, but the CPU's NHWC batch-norm kernels are far less
    precise on inputs whose channel means are large against their spread; centred, their error is
    close to NCHW's (reports/perf/NOTES.md). Costs one pass over h."""
    return h - h[:1].mean(dim=(2, 3), keepdim=True).detach()


class _ContiguousGradient(torch.autograd.Function):
    """The identity, whose gradient is handed back in the default (NCHW) layout."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.contiguous()


def contiguous_gradient(x: Tensor) -> Tensor:
    """x, with its gradient converted to the default layout. An NHWC pass's convolutions return their
    weight gradients in NHWC; flowing into the NCHW support pass of second-order MAML, they turned its
    double backward NHWC too, where the CPU's reductions are slow (reports/perf/NOTES.md)."""
    return _ContiguousGradient.apply(x)


def conv3x3_unfold(x: Tensor, weight: Tensor, stride: int) -> Tensor:
    """3x3 convolution (padding 1) as im2col + matrix product: the same function as F.conv2d.

    Under vmap with per-task weights (MAML's adapted parameters) F.conv2d becomes a grouped
    convolution and this becomes one batched matrix product; which is faster depends on the device
    and library versions, so it is a setting (`backbone.conv`) that `python -m benchmarks perf` can
    compare, not the default.
    """
    b, _, h, w = x.shape
    cols = F.unfold(x, 3, padding=1, stride=stride)
    out = weight.reshape(weight.shape[0], -1) @ cols
    return out.reshape(b, weight.shape[0], (h - 1) // stride + 1, (w - 1) // stride + 1)


def conv3x3_shifted(x: Tensor, weight: Tensor, stride: int) -> Tensor:
    """3x3 convolution (padding 1) as nine shifted, strided views of the input, each multiplied by
    one tap of the kernel and summed: the same function as F.conv2d, with no im2col buffer and only
    slicing and matrix products, whose backward passes are slicing and matrix products again."""
    b, c, h, w = x.shape
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    padded = F.pad(x, (1, 1, 1, 1))
    out = None
    for i in range(3):
        for j in range(3):
            view = padded[:, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
            term = weight[:, :, i, j] @ view.reshape(b, c, ho * wo)
            out = term if out is None else out + term
    assert out is not None
    return out.reshape(b, weight.shape[0], ho, wo)


# cudnn-nhwc: cuDNN, NHWC memory in the 'batched' strategy's grouped layers 2-4 (plain cuDNN elsewhere)
# nhwc-centred: every grouped layer of a large pass in NHWC, batch norm's input centred (centre_channels)
CONV_IMPLS = ("cudnn", "unfold", "shifted", "cudnn-nhwc", "nhwc-centred")
# nhwc-centred: a pass runs in NHWC when it has at least this many input pixels per task (rows x
# height x width) and is not differentiated twice; smaller passes were slower in NHWC on the CPU,
# larger ones faster, and a twice-differentiated pass in NHWC made second-order MAML slower
# (reports/perf/NOTES.md, "Why batched+nhwc-all"). 16 rows of 28 x 28 keeps Omniglot's 1-shot support
# passes NCHW and its query passes NHWC.
NHWC_MIN_PIXELS = 16 * 28 * 28


def large_pass(rows: int, height: int, width: int) -> bool:
    """Whether a pass of `rows` images per task of height x width is large enough for NHWC."""
    return rows * height * width >= NHWC_MIN_PIXELS


def whole_pass_nhwc(conv_impl: str, rows: int, height: int, width: int, differentiated_twice: bool) -> bool:
    """Whether every layer of a grouped pass runs in NHWC ('nhwc-centred': a large pass that is not
    differentiated twice)."""
    return conv_impl == "nhwc-centred" and large_pass(rows, height, width) and not differentiated_twice


def layer_nhwc(conv_impl: str, layer: int, whole_pass: bool) -> bool:
    """Whether layer `layer` (0-3) of a grouped pass runs in NHWC: all of a whole-NHWC pass, layers
    2-4 under 'cudnn-nhwc' (cuDNN's grouped kernels, reports/perf/h200/grouped-conv.txt)."""
    return whole_pass or (conv_impl == "cudnn-nhwc" and layer > 0)


CONV_FUNCTIONS = {"unfold": conv3x3_unfold, "shifted": conv3x3_shifted}
