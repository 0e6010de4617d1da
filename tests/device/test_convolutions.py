"""The convolution layouts of device/convolutions.py: the size rule, batch norm's centring and the
NCHW gradient hand-back compute the same function as the plain path (the formulations themselves are
checked against F.conv2d through the backbone in tests/learner/test_backbones.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.device.convolutions import centre_channels, contiguous_gradient, large_pass, layer_nhwc, whole_pass_nhwc
from benchmarks.learner.backbones import batch_norm


def test_large_pass_separates_the_measured_passes():
    """nhwc-centred's size rule at the perf settings' passes: Omniglot's 1-shot support pass (slower
    in NHWC on the CPU) stays NCHW; its query pass and mini-ImageNet's 1-shot support pass (faster in
    NHWC) do not."""
    assert not large_pass(5, 28, 28)
    assert large_pass(75, 28, 28)
    assert large_pass(5, 84, 84)


def test_a_pass_differentiated_twice_stays_nchw_and_cudnn_nhwc_converts_layers_2_to_4():
    assert whole_pass_nhwc("nhwc-centred", 75, 28, 28, differentiated_twice=False)
    assert not whole_pass_nhwc("nhwc-centred", 75, 28, 28, differentiated_twice=True)
    assert not whole_pass_nhwc("cudnn-nhwc", 75, 28, 28, differentiated_twice=False)
    assert [layer_nhwc("cudnn-nhwc", i, False) for i in range(4)] == [False, True, True, True]
    assert [layer_nhwc("cudnn", i, False) for i in range(4)] == [False] * 4


def test_centring_leaves_batch_norm_unchanged_and_is_not_differentiated():
    """centre_channels subtracts a per-channel constant: batch norm's output and its gradient are
    those of the uncentred input, and the subtracted constant carries no gradient of its own."""
    g = torch.Generator().manual_seed(3)
    h = (5 + torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)).requires_grad_(True)
    weight = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    bias = torch.randn(3, generator=g, dtype=torch.float64)
    centred = centre_channels(h)
    assert centred[:1].mean(dim=(0, 2, 3)).abs().max() < 1e-12
    target = torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    plain = batch_norm(h, weight, bias, None, fused=True)
    shifted = batch_norm(centred, weight, bias, None, fused=True)
    torch.testing.assert_close(shifted, plain, rtol=1e-12, atol=1e-12)
    (grad_plain,) = torch.autograd.grad((plain * target).sum(), h)
    (grad_shifted,) = torch.autograd.grad((shifted * target).sum(), h)
    torch.testing.assert_close(grad_shifted, grad_plain, rtol=1e-10, atol=1e-12)
    (through,) = torch.autograd.grad(centred.sum(), h)
    assert torch.equal(through, torch.ones_like(h))


def test_contiguous_gradient_is_the_identity_with_its_gradient_in_nchw():
    """An NHWC convolution hands its weight gradient back in NHWC; through contiguous_gradient the
    weight's gradient is in the default layout, the values unchanged, and it can be differentiated
    again (second-order MAML differentiates through it)."""
    g = torch.Generator().manual_seed(7)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64).contiguous(memory_format=torch.channels_last)

    def loss(weight: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight.contiguous(memory_format=torch.channels_last)).square().sum()

    (plain,) = torch.autograd.grad(loss(w), w)
    (converted,) = torch.autograd.grad(loss(contiguous_gradient(w)), w)
    assert not plain.is_contiguous() and converted.is_contiguous()
    torch.testing.assert_close(converted, plain, rtol=1e-12, atol=0)
    assert torch.autograd.gradgradcheck(lambda weight: contiguous_gradient(weight).square(), (w,))
