"""Prototypes (baselines/protonet.py, docs/methods.md "Prototypes (control)"): logits against an explicit
loop over classes and query points, gradients against finite differences, the meta-gradient of every
strategy and batch-norm mode against a reference, the first-order variant, and the refusal of
regression."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from baselines import PrototypeInner
from benchmarks.learner.backbones import BackboneSpec
from benchmarks.runs.config import ConfigError, resolve
from support.synthetic import blob_batch, build_learner, cast_batch, flat, image_batch, single_thread, tiny_conv_spec


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _loop_logits(f_s: torch.Tensor, f_q: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
    """-||q - c_k||^2 with c_k the mean of class k's support rows, by explicit loops."""
    logits = torch.empty(len(f_q), n_way, dtype=f_s.dtype)
    for k in range(n_way):
        rows = [f_s[j] for j in range(len(f_s)) if int(support_y[j]) == k]
        prototype = sum(rows) / len(rows)
        for q in range(len(f_q)):
            logits[q, k] = -sum(float(x) ** 2 for x in f_q[q] - prototype)
    return logits


def test_logits_equal_an_explicit_loop_over_classes():
    """Unsorted labels and unequal class sizes: catches means over the wrong rows, a missing square,
    a positive sign, or a scale. The batched form (leading task dimension) agrees task by task."""
    g = torch.Generator().manual_seed(0)
    f_s = torch.randn(3, 7, 5, generator=g, dtype=torch.float64)
    f_q = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    support_y = torch.stack([torch.tensor([2, 0, 1, 0, 2, 1, 0])[torch.randperm(7, generator=g)] for _ in range(3)])
    inner = PrototypeInner(3)
    batched = inner._logits(f_s, f_q, support_y)
    for t in range(3):
        expected = _loop_logits(f_s[t], f_q[t], support_y[t], 3)
        torch.testing.assert_close(inner._logits(f_s[t], f_q[t], support_y[t]), expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(batched[t], expected, rtol=1e-12, atol=1e-12)


def test_logits_pass_gradcheck():
    g = torch.Generator().manual_seed(1)
    f_s = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    f_q = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    support_y = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.autograd.gradcheck(lambda a, b: PrototypeInner(3)._logits(a, b, support_y), (f_s, f_q))


def test_first_order_holds_the_prototypes_constant():
    """First order: the gradient reaches the support features not at all, the query features as exact."""
    g = torch.Generator().manual_seed(2)
    f_s = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    f_q = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    support_y = torch.tensor([0, 1, 2, 0, 1, 2])
    exact = PrototypeInner(3)._logits(f_s, f_q, support_y)
    first = PrototypeInner(3, first_order=True)._logits(f_s, f_q, support_y)
    torch.testing.assert_close(first, exact)
    grad_s, grad_q = torch.autograd.grad(first.sum(), (f_s, f_q), allow_unused=True)
    assert grad_s is None
    torch.testing.assert_close(grad_q, torch.autograd.grad(exact.sum(), f_q)[0])


def _reference_loss(learner, params, sx, sy, qx, qy, first_order: bool, inductive: bool) -> torch.Tensor:
    if inductive:
        both = learner.features(params, torch.cat([sx, qx]), len(sx))
        f_s, f_q = both[: len(sx)], both[len(sx) :]
    else:
        f_s, f_q = learner.features(params, sx, None), learner.features(params, qx, None)
    if first_order:
        f_s = f_s.detach()
    prototypes = torch.stack([f_s[sy == k].mean(0) for k in range(3)])
    return F.cross_entropy(-torch.cdist(f_q, prototypes).pow(2), qy)


@pytest.mark.parametrize("strategy", ["loop", "vmap", "batched"])
@pytest.mark.parametrize("bn_mode", ["transductive", "inductive"])
@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_equals_the_reference(strategy: str, bn_mode: str, first_order: bool):
    """Tiny Conv-4 (batch norm), 3-way 2-shot, 2 tasks, float64: task losses and the meta-gradient of
    every strategy equal those of a reference written with masks and torch.cdist."""
    batch = image_batch(torch.Generator().manual_seed(3), n_tasks=2, n_way=3, dtype=torch.float64)
    inner = PrototypeInner(3, first_order=first_order, bn_mode=bn_mode)
    learner, params = build_learner(tiny_conv_spec(), inner, strategy=strategy)
    assert not [k for k in params if not k.startswith("backbone.")]  # no parameters of its own
    names = list(params)
    result = learner.meta_gradients(params, batch)
    inductive = bn_mode == "inductive"
    losses = torch.stack(
        [_reference_loss(learner, params, *t, first_order, inductive) for t in zip(*batch.tensors(), strict=True)]
    )
    torch.testing.assert_close(result.task_losses, losses.detach(), rtol=1e-10, atol=1e-12)
    expected = torch.autograd.grad(losses.mean(), [params[k] for k in names])
    torch.testing.assert_close(
        flat(result.gradients, names), torch.cat([e.reshape(-1) for e in expected]), rtol=1e-9, atol=1e-12
    )


def test_meta_gradient_matches_finite_differences():
    """The meta-gradient along 3 random directions by central differences (MLP, float64, h = 1e-6)."""
    g = torch.Generator().manual_seed(4)
    batch = cast_batch(blob_batch(g, n_tasks=2, n_way=3, k_shot=2, n_query=3, dim=4), torch.float64)
    learner, params = build_learner(BackboneSpec(kind="mlp", in_channels=4), PrototypeInner(3))
    names = list(params)
    gradient = flat(learner.meta_gradients(params, batch).gradients, names)

    def loss(p: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            tasks = zip(*batch.tensors(), strict=True)
            return float(torch.stack([_reference_loss(learner, p, *t, False, False) for t in tasks]).mean())

    for _ in range(3):
        direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in params.items()}
        h = 1e-6
        plus = {k: v.detach() + h * direction[k] for k, v in params.items()}
        minus = {k: v.detach() - h * direction[k] for k, v in params.items()}
        fd = (loss(plus) - loss(minus)) / (2 * h)
        analytic = float(gradient @ flat(direction, names))
        assert abs(analytic - fd) <= 1e-6 * abs(fd) + 1e-8, (analytic, fd)


def test_regression_is_refused():
    with pytest.raises(ValueError, match="classification only"):
        PrototypeInner(1, task="regression")
    with pytest.raises(ConfigError, match=r"method 'protonet' supports classification only.*'sinusoid'"):
        resolve({"method": "protonet", "dataset": "sinusoid"})
    with pytest.raises(ConfigError, match=r"inner loop 'prototypes' \(compose.inner\)"):
        resolve({"method": "maml", "dataset": "sinusoid", "compose.inner": "prototypes"})
    assert resolve({"method": "protonet", "dataset": "cub"})["method"] == "protonet"
