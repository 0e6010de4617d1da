"""MAML's meta-gradient (baselines/maml.py through benchmarks/learner/meta_learner.py) against float64
finite differences and against an independent plain-autograd implementation, for second and first
order, 1 and 2 inner steps, both BatchNorm modes and both strategies (loop, vmap).

The vmap strategy differentiates grad(vmap(grad(...))); through F.batch_norm that once returned wrong
second-order gradients, which is why benchmarks/backbones.batch_norm is written out. These tests are
what would notice a regression."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.maml import HEAD_INITS, TRUNCATED_NORMAL_STD, GradientInner
from benchmarks.data.tasks import TaskBatch
from benchmarks.learner.backbones import BackboneSpec
from support.distributions import (
    ks_bound,
    ks_distance,
    normal_cdf,
    truncated_normal_cdf,
    truncated_normal_std,
    uniform_cdf,
)
from support.synthetic import (
    build_learner,
    cast_batch,
    default_gradient_inner,
    flat,
    image_batch,
    single_thread,
    sinusoid_batch,
    tiny_conv_spec,
)

Params = dict[str, Tensor]
N_WAY = 3
STEP_SIZE = 0.4


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


# --- an independent implementation: plain autograd, F.batch_norm, no torch.func -------------------
def reference_conv4(params: Params, x: Tensor, stats_rows: int | None) -> Tensor:
    """Conv-4, strided variant: conv(stride 2, pad 1) -> BN from batch statistics -> ReLU, x4, then
    spatial mean. Inductive BN (stats_rows = n) normalises every row with the first n rows' statistics."""
    h = x
    for i in range(4):
        h = F.conv2d(h, params[f"backbone.convs.{i}"], stride=2, padding=1)
        weight, bias = params[f"backbone.norms.{2 * i}"], params[f"backbone.norms.{2 * i + 1}"]
        if stats_rows is None:
            h = F.batch_norm(h, None, None, weight, bias, training=True, eps=1e-5)
        else:
            ref = h[:stats_rows]
            mean = ref.mean(dim=(0, 2, 3), keepdim=True)
            var = ((ref - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
            h = (h - mean) / torch.sqrt(var + 1e-5) * weight[None, :, None, None] + bias[None, :, None, None]
        h = F.relu(h)
    return h.mean(dim=(2, 3))


def reference_mlp(params: Params, x: Tensor, stats_rows: int | None) -> Tensor:
    h = F.relu(F.linear(x, params["backbone.layers.0.weight"], params["backbone.layers.0.bias"]))
    return F.relu(F.linear(h, params["backbone.layers.1.weight"], params["backbone.layers.1.bias"]))


def reference_outputs(backbone, params: Params, x: Tensor, stats_rows: int | None) -> Tensor:
    return F.linear(backbone(params, x, stats_rows), params["head.weight"], params["head.bias"])


def reference_adapt(
    backbone, params: Params, sx: Tensor, sy: Tensor, steps: int, loss_fn, create_graph: bool
) -> Params:
    """theta_{s+1} = theta_s - a grad L_S(theta_s) with torch.autograd.grad; create_graph=False makes
    the inner gradients constants (first order)."""
    fast = params
    for _ in range(steps):
        names = list(fast)
        loss = loss_fn(reference_outputs(backbone, fast, sx, None), sy)
        grads = torch.autograd.grad(loss, [fast[k] for k in names], create_graph=create_graph)
        fast = {k: fast[k] - STEP_SIZE * g for k, g in zip(names, grads, strict=True)}
        if not create_graph:
            fast = {k: v.detach().requires_grad_(True) for k, v in fast.items()}
    return fast


def reference_query_loss(backbone, fast: Params, sx: Tensor, qx: Tensor, qy: Tensor, bn_mode: str, loss_fn) -> Tensor:
    if bn_mode == "transductive":
        return loss_fn(reference_outputs(backbone, fast, qx, None), qy)
    both = reference_outputs(backbone, fast, torch.cat([sx, qx]), sx.shape[0])
    return loss_fn(both[sx.shape[0] :], qy)


def reference_meta_loss(backbone, params: Params, batch: TaskBatch, steps: int, bn_mode: str, loss_fn) -> Tensor:
    """Mean over tasks of the query loss after second-order adaptation (differentiable in params)."""
    losses = []
    for sx, sy, qx, qy in zip(*batch.tensors(), strict=True):
        fast = reference_adapt(backbone, params, sx, sy, steps, loss_fn, create_graph=True)
        losses.append(reference_query_loss(backbone, fast, sx, qx, qy, bn_mode, loss_fn))
    return torch.stack(losses).mean()


def reference_first_order_gradient(
    backbone, params: Params, batch: TaskBatch, steps: int, bn_mode: str, loss_fn
) -> Params:
    """FO-MAML: adapt with constant inner gradients, then the query-loss gradient with respect to the
    adapted parameters, averaged over tasks."""
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for sx, sy, qx, qy in zip(*batch.tensors(), strict=True):
        fast = reference_adapt(backbone, params, sx, sy, steps, loss_fn, create_graph=False)
        loss = reference_query_loss(backbone, fast, sx, qx, qy, bn_mode, loss_fn)
        grads = torch.autograd.grad(loss, list(fast.values()))
        for k, g in zip(fast, grads, strict=True):
            total[k] += g / batch.n_tasks
    return total


def finite_difference(fn, params: Params, direction: Params, h: float = 1e-6) -> float:
    """Central difference of fn along direction, in float64."""
    plus = {k: (v + h * direction[k]).detach().requires_grad_(True) for k, v in params.items()}
    minus = {k: (v - h * direction[k]).detach().requires_grad_(True) for k, v in params.items()}
    return float((fn(plus) - fn(minus)).detach() / (2 * h))


# --- second order ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bn_mode", ["transductive", "inductive"])
@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(steps: int, bn_mode: str):
    """Every parameter tensor of a tiny Conv-4 (4 filters, 12x12) + head: 3 random coordinates each and
    3 random full directions by central differences (h = 1e-6, float64), plus the whole vector against
    plain-autograd second-order MAML. Catches: a detached inner gradient (first order passed off as
    second order), a wrong step size or step count, BN statistics from the wrong rows, and a wrong
    double-backward under vmap."""
    g = torch.Generator().manual_seed(11)
    batch = cast_batch(image_batch(g, n_tasks=2, n_way=N_WAY), torch.float64)
    inner = default_gradient_inner(N_WAY, steps_train=steps, step_size=STEP_SIZE, bn_mode=bn_mode)

    def meta_loss(p: Params) -> Tensor:
        return reference_meta_loss(reference_conv4, p, batch, steps, bn_mode, F.cross_entropy)

    _, params = build_learner(tiny_conv_spec(), inner)
    names = list(params)
    directions = []  # 3 random coordinates of every parameter tensor, then 3 random full directions
    for k in names:
        for index in torch.randperm(params[k].numel(), generator=g)[:3].tolist():
            direction = {n: torch.zeros_like(v) for n, v in params.items()}
            direction[k].view(-1)[index] = 1.0
            directions.append(direction)
    directions += [{n: torch.randn(v.shape, generator=g, dtype=v.dtype) for n, v in params.items()} for _ in range(3)]
    finite_differences = [finite_difference(meta_loss, params, d) for d in directions]
    reference = dict(zip(names, torch.autograd.grad(meta_loss(params), [params[k] for k in names]), strict=True))

    for strategy in ("loop", "vmap", "batched"):
        learner, params = build_learner(tiny_conv_spec(), inner, strategy=strategy)
        result = learner.meta_gradients(params, batch)
        assert set(result.gradients) == set(names)
        gradient = flat(result.gradients, names)
        torch.testing.assert_close(gradient, flat(reference, names), rtol=1e-9, atol=1e-11)
        # The reported task losses are the query losses of the same forward pass.
        torch.testing.assert_close(result.task_losses.mean(), meta_loss(params).detach(), rtol=1e-12, atol=0)
        scale = gradient.abs().max().item()
        for direction, fd in zip(directions, finite_differences, strict=True):
            analytic = (gradient @ flat(direction, names)).item()
            assert abs(analytic - fd) <= 1e-5 * abs(fd) + 1e-7 * scale, (strategy, analytic, fd)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_second_order_regression_meta_gradient_matches_finite_differences(strategy: str):
    """The MLP (1 -> 40 -> 40 -> head) on sinusoid regression with mean squared error, 2 inner steps:
    the regression path of the same inner loop, against plain autograd and 4 random directions."""
    g = torch.Generator().manual_seed(5)
    batch = sinusoid_batch(g, n_tasks=3, k_support=5, k_query=5, dtype=torch.float64)
    inner = default_gradient_inner(1, task="regression", steps_train=2, step_size=STEP_SIZE / 40)
    learner, params = build_learner(BackboneSpec(kind="mlp"), inner, strategy=strategy)
    result = learner.meta_gradients(params, batch)
    names = list(params)

    def meta_loss(p: Params) -> Tensor:
        losses = []
        for sx, sy, qx, qy in zip(*batch.tensors(), strict=True):
            fast = p
            for _ in range(2):
                loss = F.mse_loss(reference_outputs(reference_mlp, fast, sx, None), sy)
                grads = torch.autograd.grad(loss, [fast[k] for k in names], create_graph=True)
                fast = {k: fast[k] - STEP_SIZE / 40 * gr for k, gr in zip(names, grads, strict=True)}
            losses.append(F.mse_loss(reference_outputs(reference_mlp, fast, qx, None), qy))
        return torch.stack(losses).mean()

    reference = dict(zip(names, torch.autograd.grad(meta_loss(params), [params[k] for k in names]), strict=True))
    torch.testing.assert_close(flat(result.gradients, names), flat(reference, names), rtol=1e-9, atol=1e-11)
    scale = float(flat(result.gradients, names).detach().abs().max())
    for _ in range(4):
        direction = {n: torch.randn(v.shape, generator=g, dtype=v.dtype) for n, v in params.items()}
        fd = finite_difference(meta_loss, params, direction)
        analytic = float(flat(result.gradients, names).detach() @ flat(direction, names))
        assert abs(analytic - fd) <= 1e-6 * abs(fd) + 1e-7 * scale, (analytic, fd)


@pytest.mark.parametrize("bn_mode", ["transductive", "inductive"])
def test_second_order_meta_gradient_with_unfold_convolution(bn_mode: str):
    """Conv-4 with its im2col convolution (backbone.conv = unfold): the same meta-gradient as the
    plain-autograd reference with F.conv2d (itself checked against finite differences above), in
    both strategies, 2 inner steps."""
    g = torch.Generator().manual_seed(14)
    batch = cast_batch(image_batch(g, n_tasks=2, n_way=N_WAY), torch.float64)
    inner = default_gradient_inner(N_WAY, steps_train=2, step_size=STEP_SIZE, bn_mode=bn_mode)
    for strategy in ("loop", "vmap", "batched"):
        learner, params = build_learner(tiny_conv_spec("unfold"), inner, strategy=strategy)
        names = list(params)
        loss = reference_meta_loss(reference_conv4, params, batch, 2, bn_mode, F.cross_entropy)
        reference = dict(zip(names, torch.autograd.grad(loss, [params[k] for k in names]), strict=True))
        result = learner.meta_gradients(params, batch)
        torch.testing.assert_close(flat(result.gradients, names), flat(reference, names), rtol=1e-9, atol=1e-11)


# --- first order ----------------------------------------------------------------------------------
# Measured on this fixture: ||g_SO - g_FO|| / ||g_SO|| is 0.97 to 1.00 across the four settings (the
# second-order terms dominate at step size 0.4); a first order that silently became second order (or
# the reverse) would give 0.
MIN_RELATIVE_GAP = 0.1


@pytest.mark.parametrize("bn_mode", ["transductive", "inductive"])
@pytest.mark.parametrize("steps", [1, 2])
def test_first_order_equals_hand_written_fomaml_and_differs_from_second_order(steps: int, bn_mode: str):
    """first_order=True equals the gradient of the query loss with respect to the adapted parameters
    (inner gradients as constants) from an independent autograd loop, in both strategies, and differs
    from second order by more than MIN_RELATIVE_GAP."""
    g = torch.Generator().manual_seed(12)
    batch = cast_batch(image_batch(g, n_tasks=2, n_way=N_WAY), torch.float64)
    first = default_gradient_inner(N_WAY, steps_train=steps, step_size=STEP_SIZE, bn_mode=bn_mode, first_order=True)
    second = default_gradient_inner(N_WAY, steps_train=steps, step_size=STEP_SIZE, bn_mode=bn_mode)
    for strategy in ("loop", "vmap", "batched"):
        learner, params = build_learner(tiny_conv_spec(), first, strategy=strategy)
        names = list(params)
        fo = flat(learner.meta_gradients(params, batch).gradients, names)
        expected = reference_first_order_gradient(reference_conv4, params, batch, steps, bn_mode, F.cross_entropy)
        torch.testing.assert_close(fo, flat(expected, names), rtol=1e-9, atol=1e-11)

        so_learner, so_params = build_learner(tiny_conv_spec(), second, strategy=strategy)
        so = flat(so_learner.meta_gradients(so_params, batch).gradients, names)
        gap = float((so - fo).norm() / so.norm())
        assert gap > MIN_RELATIVE_GAP, f"first and second order differ by only {gap:.3g}"


# --- test-time adaptation -------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_evaluate_adapts_with_the_test_step_count(strategy: str):
    """evaluate() uses steps_test (here 3, while steps_train is 1): query loss and accuracy equal the
    reference after 3 steps. Catches evaluation with the training step count or without adaptation."""
    g = torch.Generator().manual_seed(13)
    batch = cast_batch(image_batch(g, n_tasks=3, n_way=N_WAY), torch.float64)
    inner = default_gradient_inner(N_WAY, steps_train=1, steps_test=3, step_size=STEP_SIZE, bn_mode="inductive")
    learner, params = build_learner(tiny_conv_spec(), inner, strategy=strategy)
    accuracy, loss = learner.evaluate(params, batch)
    for i, (sx, sy, qx, qy) in enumerate(zip(*batch.tensors(), strict=True)):
        fast = reference_adapt(reference_conv4, params, sx, sy, 3, F.cross_entropy, create_graph=False)
        with torch.no_grad():
            logits = reference_outputs(reference_conv4, fast, torch.cat([sx, qx]), sx.shape[0])[sx.shape[0] :]
        torch.testing.assert_close(loss[i], F.cross_entropy(logits, qy), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(accuracy[i].double(), (logits.argmax(-1) == qy).double().mean())


# --- the head's initial draw -----------------------------------------------------------------------
HEAD_OUTPUTS, HEAD_FEATURES = 40, 250  # 10,000 weights: a KS distance of 0.0195 has p about 0.001
XAVIER_BOUND = math.sqrt(6 / (HEAD_OUTPUTS + HEAD_FEATURES))
# each draw's distribution; zero has none
HEAD_DISTRIBUTIONS = {
    "xavier": uniform_cdf(XAVIER_BOUND),
    "normal": normal_cdf(1.0),
    "truncated-normal": truncated_normal_cdf(TRUNCATED_NORMAL_STD),
}


def _head(head_init: str, seed: int = 0) -> Params:
    inner = GradientInner(n_outputs=HEAD_OUTPUTS, head_init=head_init)
    return inner.init_parameters(HEAD_FEATURES, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("head_init", HEAD_INITS)
def test_head_weight_is_drawn_from_its_distribution_and_the_bias_is_zero(head_init: str):
    """Each draw is close to its own distribution (KS distance below the p = 0.001 bound) and far from
    the others' (so the check can fail); moments and ranges as the draw defines them."""
    head = _head(head_init)
    weight = head["head.weight"]
    assert weight.shape == (HEAD_OUTPUTS, HEAD_FEATURES)
    assert torch.equal(head["head.bias"], torch.zeros(HEAD_OUTPUTS))
    if head_init == "zero":
        assert torch.equal(weight, torch.zeros_like(weight))
        return
    bound = ks_bound(weight.numel())
    assert ks_distance(weight, HEAD_DISTRIBUTIONS[head_init]) < bound
    for other, cdf in HEAD_DISTRIBUTIONS.items():
        if other != head_init:
            assert ks_distance(weight, cdf) > 10 * bound, other
    mean, std = weight.mean().item(), weight.std().item()
    if head_init == "normal":  # tf.random_normal: N(0, 1)
        assert abs(mean) < 0.04 and abs(std - 1.0) < 0.03
    elif head_init == "truncated-normal":  # tf.truncated_normal(stddev=0.01): nothing beyond 2 std
        assert weight.abs().max().item() <= 2 * TRUNCATED_NORMAL_STD
        assert abs(mean) < 0.0004 and abs(std / truncated_normal_std(TRUNCATED_NORMAL_STD) - 1) < 0.03
    else:  # Xavier-uniform: within the bound, and reaching near it
        assert XAVIER_BOUND * 0.99 < weight.abs().max().item() <= XAVIER_BOUND


def test_xavier_head_is_the_draw_the_suite_made_before_head_init_existed():
    """head_init 'xavier' draws exactly what init_parameters drew before the setting: one
    xavier_uniform_ from the given generator."""
    expected = torch.empty(HEAD_OUTPUTS, HEAD_FEATURES)
    torch.nn.init.xavier_uniform_(expected, generator=torch.Generator().manual_seed(5))
    assert torch.equal(_head("xavier", seed=5)["head.weight"], expected)
    assert GradientInner(n_outputs=3).head_init == "xavier"


def test_unknown_head_init_is_rejected():
    with pytest.raises(ValueError, match="head_init must be one of"):
        GradientInner(n_outputs=3, head_init="glorot")
