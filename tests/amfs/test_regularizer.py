"""The composite regularizer (docs/methods.md, "Composite regularizer"), per task:

R = L_Q + mu_sign * mu * mean_x ||d loss_x / d f_x||^2 + gamma_sign * gamma * I_hat(f; D_Q)
I_hat = H(mean_x p(y|x)) - mean_x H(p(y|x))
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from amfs import CompositeRegularizer, KernelInner
from amfs.regularizer import prediction_gradient_sq_norm, prediction_information
from baselines import MeanOuter
from benchmarks.learner.backbones import BackboneSpec
from support.synthetic import blob_batch, build_learner, cast_batch, flat, single_thread

# 2 points, 2 classes: logits (0, ln 3) and (ln 3, 0) give p = (1/4, 3/4) and (3/4, 1/4).
#   H(mean p) = H(1/2, 1/2) = ln 2 = 0.6931472
#   H(p_x) = (1/4) ln 4 + (3/4) ln (4/3) = 0.3465736 + 0.2157616 = 0.5623351 for both points
#   I_hat = 0.6931472 - 0.5623351 = 0.1308121
LOGITS_2X2 = [[0.0, math.log(3.0)], [math.log(3.0), 0.0]]
INFORMATION_2X2 = 0.1308121
# 3 points, 3 classes: p = (1/2, 1/4, 1/4) and its two cyclic shifts; mean p uniform.
#   H(mean p) = ln 3 = 1.0986123;  H(p_x) = (1/2) ln 2 + 2 (1/4) ln 4 = 1.5 ln 2 = 1.0397208
#   I_hat = 1.0986123 - 1.0397208 = 0.0588915
LOGITS_3X3 = [[math.log(p) for p in row] for row in ([0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5])]
INFORMATION_3X3 = 0.0588915
# Gradient-norm term for the 2x2 logits with labels (0, 0): softmax - onehot =
#   (1/4 - 1, 3/4) -> 0.5625 + 0.5625 = 1.125;   (3/4 - 1, 1/4) -> 0.0625 + 0.0625 = 0.125;   mean 0.625
GRAD_NORM_2X2_LABELS_00 = 0.625


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def test_off_when_mu_and_gamma_are_zero():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g)
    penalty = CompositeRegularizer(mu=0.0, gamma=0.0)(logits, torch.arange(6) % 4, "classification")
    assert penalty.item() == 0.0


def test_information_term_by_hand():
    """Catches a swapped sign (conditional minus marginal), entropy in bits, or the marginal of the
    logits instead of the probabilities."""
    info_2 = prediction_information(torch.tensor(LOGITS_2X2, dtype=torch.float64))
    info_3 = prediction_information(torch.tensor(LOGITS_3X3, dtype=torch.float64))
    assert info_2.item() == pytest.approx(INFORMATION_2X2, abs=1e-7)
    assert info_3.item() == pytest.approx(INFORMATION_3X3, abs=1e-7)
    assert info_2.item() == pytest.approx(math.log(2) - (0.25 * math.log(4) + 0.75 * math.log(4 / 3)), rel=1e-12)
    # Identical predictions carry no information about the input.
    same = torch.tensor([[0.2, 1.0, -0.5]] * 4, dtype=torch.float64)
    assert prediction_information(same).item() == pytest.approx(0.0, abs=1e-12)


def test_gradient_norm_term_by_hand():
    logits = torch.tensor(LOGITS_2X2, dtype=torch.float64)
    value = prediction_gradient_sq_norm(logits, torch.tensor([0, 0]), "classification")
    assert value.item() == pytest.approx(GRAD_NORM_2X2_LABELS_00, rel=1e-12)


def _per_point_gradient_sq_norm(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """mean_x ||d loss_x / d f_x||^2 by torch.autograd, one query point at a time (create_graph so the
    result can itself be differentiated)."""
    norms = []
    for i in range(outputs.shape[0]):
        if task == "classification":
            loss_i = F.cross_entropy(outputs[i : i + 1], targets[i : i + 1])
        else:
            loss_i = (outputs[i] - targets[i]).pow(2).sum()
        (grad,) = torch.autograd.grad(loss_i, outputs, create_graph=True)
        norms.append(grad[i].pow(2).sum())
    return torch.stack(norms).mean()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_gradient_norm_term_matches_autograd_per_point(task: str):
    """The closed form (softmax - onehot, 2 (f - y)) equals autograd of each point's own loss with
    respect to its prediction, in value and in its own gradient (the term is trained through).
    Catches the gradient of the batch-mean loss (1/n too small), a missing factor 2, or a residual
    with the wrong sign."""
    g = torch.Generator().manual_seed(1)
    if task == "classification":
        outputs = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
        targets = torch.randint(0, 4, (7,), generator=g)
    else:
        outputs = torch.randn(7, 1, generator=g, dtype=torch.float64, requires_grad=True)
        targets = torch.randn(7, 1, generator=g, dtype=torch.float64)
    closed = prediction_gradient_sq_norm(outputs, targets, task)
    reference = _per_point_gradient_sq_norm(outputs, targets, task)
    torch.testing.assert_close(closed, reference, rtol=1e-12, atol=1e-14)
    (d_closed,) = torch.autograd.grad(closed, outputs)
    (d_reference,) = torch.autograd.grad(reference, outputs)
    torch.testing.assert_close(d_closed, d_reference, rtol=1e-10, atol=1e-14)


def test_composite_value_and_sign_options():
    """R - L_Q = mu_sign mu G + gamma_sign gamma I with G = 0.625 and I = 0.1308121 by hand; each sign
    option flips its own term only."""
    logits = torch.tensor(LOGITS_2X2, dtype=torch.float64)
    labels = torch.tensor([0, 0])
    mu, gamma = 0.1, 0.01
    for mu_sign in (1.0, -1.0):
        for gamma_sign in (1.0, -1.0):
            reg = CompositeRegularizer(mu=mu, gamma=gamma, mu_sign=mu_sign, gamma_sign=gamma_sign)
            expected = mu_sign * mu * GRAD_NORM_2X2_LABELS_00 + gamma_sign * gamma * INFORMATION_2X2
            assert reg(logits, labels, "classification").item() == pytest.approx(expected, abs=1e-8)
    only_mu = CompositeRegularizer(mu=mu, gamma=0.0)(logits, labels, "classification")
    only_gamma = CompositeRegularizer(mu=0.0, gamma=gamma)(logits, labels, "classification")
    assert only_mu.item() == pytest.approx(mu * GRAD_NORM_2X2_LABELS_00, rel=1e-12)
    assert only_gamma.item() == pytest.approx(gamma * INFORMATION_2X2, abs=1e-9)


def test_information_term_is_zero_for_regression():
    """An assumption of the suite (regularizer.py docstring): I_hat is defined for classification only."""
    outputs = torch.tensor([[0.5], [-1.0], [2.0]], dtype=torch.float64)
    targets = torch.tensor([[0.0], [0.0], [1.0]], dtype=torch.float64)
    assert CompositeRegularizer(mu=0.0, gamma=1.0)(outputs, targets, "regression").item() == 0.0
    # 2 (f - y) = (1, -2, 2): squared norms 1, 4, 4, mean 3.
    assert CompositeRegularizer(mu=1.0, gamma=1.0)(outputs, targets, "regression").item() == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [{"mu": -0.1}, {"gamma": -1.0}, {"mu_sign": 0.5}, {"gamma_sign": 2.0}])
def test_invalid_settings_are_rejected(bad: dict):
    with pytest.raises(ValueError):
        CompositeRegularizer(**bad)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_meta_gradient_includes_the_penalty(strategy: str):
    """MetaLearner (kernel inner loop, mean outer loop, regularizer on) differentiates
    mean_t [CE + mu G + gamma I] with G and I computed here per point by autograd; the reported task
    losses are the plain cross-entropy. Catches a penalty that is added to the report but not to the
    gradient, or the reverse."""
    g = torch.Generator().manual_seed(2)
    batch = cast_batch(blob_batch(g, n_tasks=3, n_way=3, k_shot=2, n_query=3, dim=4), torch.float64)
    inner = KernelInner(n_outputs=3, sigma_init="sqrt_d")
    reg = CompositeRegularizer(mu=0.1, gamma=0.05)
    learner, params = build_learner(BackboneSpec(kind="mlp", in_channels=4), inner, MeanOuter(), reg, strategy)
    names = list(params)
    result = learner.meta_gradients(params, batch)

    objectives, losses = [], []
    for sx, sy, qx, qy in zip(*batch.tensors(), strict=True):
        logits, _ = inner.query_outputs(learner.features, params, sx, sy, qx, True)
        loss = F.cross_entropy(logits, qy)
        p = F.softmax(logits, -1)
        mean_p = p.mean(0)
        info = -(mean_p * mean_p.log()).sum() + (p * p.log()).sum(-1).mean()
        objectives.append(loss + 0.1 * _per_point_gradient_sq_norm(logits, qy, "classification") + 0.05 * info)
        losses.append(loss.detach())
    expected = torch.autograd.grad(torch.stack(objectives).mean(), [params[k] for k in names])
    torch.testing.assert_close(
        flat(result.gradients, names), torch.cat([e.reshape(-1) for e in expected]), rtol=1e-9, atol=1e-12
    )
    torch.testing.assert_close(result.task_losses, torch.stack(losses), rtol=1e-12, atol=0)

    plain, _ = build_learner(BackboneSpec(kind="mlp", in_channels=4), inner, MeanOuter(), None, strategy)
    unregularized = flat(plain.meta_gradients(params, batch).gradients, names)
    assert (flat(result.gradients, names) - unregularized).norm() > 1e-3 * unregularized.norm()
    zero = CompositeRegularizer(mu=0.0, gamma=0.0)
    off, _ = build_learner(BackboneSpec(kind="mlp", in_channels=4), inner, MeanOuter(), zero, strategy)
    torch.testing.assert_close(flat(off.meta_gradients(params, batch).gradients, names), unregularized, rtol=0, atol=0)
