"""The linear ridge head (baselines/ridge.py, docs/methods.md "Linear ridge head (control)"): the dual
solve against the primal ridge regression in float64, its gradients against finite differences, the
jitter retries on singular systems, and the inner loop's outputs and exact and first-order
meta-gradients against a reference written from the primal form."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from baselines import RidgeInner
from baselines.ridge import ridge_solve
from benchmarks.learner.backbones import BackboneSpec
from support.synthetic import blob_batch, build_learner, cast_batch, flat, single_thread, sinusoid_batch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _primal(f_s: torch.Tensor, f_q: torch.Tensor, targets: torch.Tensor, lam: float) -> torch.Tensor:
    """F_Q W with W = (F_S^T F_S + lambda I)^-1 F_S^T Y_S, one task, float64."""
    d = f_s.shape[-1]
    w = torch.linalg.solve(f_s.T @ f_s + lam * torch.eye(d, dtype=f_s.dtype), f_s.T @ targets)
    return f_q @ w


@pytest.mark.parametrize("d", [3, 14])  # fewer and more features than the 9 support rows
def test_dual_solution_equals_primal_ridge_regression(d: int):
    """F_Q F_S^T (F_S F_S^T + lambda I)^-1 Y = F_Q (F_S^T F_S + lambda I)^-1 F_S^T Y (Woodbury), on a
    batch of 4 tasks: catches lambda missing or squared, a transposed Gram matrix, or a task mix-up."""
    g = torch.Generator().manual_seed(0)
    f_s = torch.randn(4, 9, d, generator=g, dtype=torch.float64)
    f_q = torch.randn(4, 5, d, generator=g, dtype=torch.float64)
    targets = torch.randn(4, 9, 3, generator=g, dtype=torch.float64)
    alpha, retries, failed = ridge_solve(f_s @ f_s.mT, targets, torch.tensor(0.3, dtype=torch.float64), 6)
    assert not retries.any() and not failed.any()
    for t in range(4):
        torch.testing.assert_close(f_q[t] @ f_s[t].T @ alpha[t], _primal(f_s[t], f_q[t], targets[t], 0.3))


def test_solve_gradients_pass_gradcheck():
    """d alpha / d (F_S, Y, lambda) against finite differences (float64)."""
    g = torch.Generator().manual_seed(1)
    f_s = torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randn(2, 5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, y, la: ridge_solve(a @ a.mT, y, la, 6)[0], (f_s, targets, lam))


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("first_order", [False, True])
def test_outputs_pass_gradcheck(task: str, first_order: bool):
    """The head's outputs as functions of the features, log lambda and log s (float64): first order
    detaches the support features in the solve only, which gradcheck sees as a different function
    (so it is checked against the detached reference instead)."""
    g = torch.Generator().manual_seed(2)
    n_outputs = 3 if task == "classification" else 1
    inner = RidgeInner(n_outputs, task=task)
    f_s = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    f_q = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    support_y = torch.tensor([0, 0, 1, 1, 2, 2]) if task == "classification" else torch.randn(6, 1, generator=g)
    log_lambda = torch.tensor(math.log(0.5), dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor(math.log(3.0), dtype=torch.float64, requires_grad=True)
    if not first_order:
        assert torch.autograd.gradcheck(
            lambda a, b, la, s: (
                inner._solve_and_score(a, b, support_y.double(), la, s)[0]
                if task == "regression"
                else inner._solve_and_score(a, b, support_y, la, s)[0]
            ),
            (f_s, f_q, log_lambda, log_scale),
        )
        return
    fo = RidgeInner(n_outputs, task=task, first_order=True)
    y = support_y if task == "classification" else support_y.double()
    out = fo._solve_and_score(f_s, f_q, y, log_lambda, log_scale)[0]
    targets = F.one_hot(support_y, 3).double() if task == "classification" else y
    gram = f_s.detach() @ f_s.detach().T
    alpha = torch.linalg.solve(gram + log_lambda.exp() * torch.eye(6, dtype=torch.float64), targets)
    expected = f_q @ f_s.T @ alpha
    expected = expected * log_scale.exp() if task == "classification" else expected
    weights = torch.randn(out.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((out * weights).sum(), (f_s, f_q, log_lambda))
    want = torch.autograd.grad((expected * weights).sum(), (f_s, f_q, log_lambda))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_singular_system_is_retried_with_jitter_and_reports_exhaustion():
    """Identical support features and lambda ~ 0 in float32: the Gram matrix is singular, the solve adds
    jitter and stays finite; with no retries allowed it reports failure. vmap gives the same counts."""
    f = torch.ones(2, 6, 8)
    f[1] = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))  # 6 rows of rank 6: well-conditioned
    gram, targets, lam = f @ f.mT, torch.randn(2, 6, 3), torch.tensor(1e-12)
    alpha, retries, failed = ridge_solve(gram, targets, lam, 6)
    assert retries[0] > 0 and retries[1] == 0 and not failed.any() and torch.isfinite(alpha).all()
    _, none_retries, none_failed = ridge_solve(gram, targets, lam, 0)
    assert none_failed[0] and not none_failed[1] and not none_retries.any()
    _, vmapped, _ = torch.func.vmap(lambda a, y: ridge_solve(a, y, lam, 6))(gram, targets)
    assert torch.equal(vmapped, retries)


def _fixture(task: str, first_order: bool = False, strategy: str = "loop"):
    g = torch.Generator().manual_seed(4)
    if task == "classification":
        batch = cast_batch(blob_batch(g, n_tasks=2, n_way=3, k_shot=2, n_query=3, dim=4), torch.float64)
        spec, inner = BackboneSpec(kind="mlp", in_channels=4), RidgeInner(3, first_order=first_order)
    else:
        batch = sinusoid_batch(g, n_tasks=2, k_support=6, k_query=4, dtype=torch.float64)
        spec, inner = BackboneSpec(kind="mlp"), RidgeInner(1, task="regression", first_order=first_order)
    learner, params = build_learner(spec, inner, strategy=strategy)
    with torch.no_grad():  # off their initial values, so that each one matters
        params["ridge.log_lambda"].fill_(math.log(0.3))
        params["ridge.log_scale"].fill_(math.log(4.0))
    return batch, learner, params


def _reference_loss(learner, params, sx, sy, qx, qy, task: str, first_order: bool = False) -> torch.Tensor:
    """One task's query loss from the primal ridge regression, float64 (first order: W from detached F_S
    is not the dual's detachment, so the dual form with detached F_S in the solve is written out)."""
    f_s, f_q = learner.features(params, sx, None), learner.features(params, qx, None)
    lam = params["ridge.log_lambda"].exp()
    targets = F.one_hot(sy, 3).double() if task == "classification" else sy
    if first_order:
        solve_f = f_s.detach()
        alpha = torch.linalg.solve(solve_f @ solve_f.T + lam * torch.eye(len(sx), dtype=torch.float64), targets)
        scores = f_q @ f_s.T @ alpha
    else:
        w = torch.linalg.solve(f_s.T @ f_s + lam * torch.eye(f_s.shape[1], dtype=torch.float64), f_s.T @ targets)
        scores = f_q @ w
    if task == "classification":
        return F.cross_entropy(params["ridge.log_scale"].exp() * scores, qy)
    return F.mse_loss(scores, qy)


@pytest.mark.parametrize("strategy", ["loop", "vmap", "batched"])
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_equals_the_reference(task: str, strategy: str, first_order: bool):
    """Task losses and the meta-gradient of the ridge head inside MetaLearner equal those of the primal
    reference (exact) or the detached-support reference (first order), in float64."""
    batch, learner, params = _fixture(task, first_order, strategy)
    names = list(params)
    result = learner.meta_gradients(params, batch)
    losses = [_reference_loss(learner, params, *t, task, first_order) for t in zip(*batch.tensors(), strict=True)]
    torch.testing.assert_close(result.task_losses, torch.stack(losses).detach(), rtol=1e-10, atol=1e-12)
    expected = torch.autograd.grad(torch.stack(losses).mean(), [params[k] for k in names], allow_unused=True)
    expected = [torch.zeros_like(params[k]) if e is None else e for k, e in zip(names, expected, strict=True)]
    torch.testing.assert_close(
        flat(result.gradients, names), torch.cat([e.reshape(-1) for e in expected]), rtol=1e-9, atol=1e-12
    )
    if task == "regression":  # the scale does not enter regression outputs
        assert float(result.gradients["ridge.log_scale"]) == 0.0


def test_meta_gradient_matches_finite_differences():
    """The exact meta-gradient along log lambda, log s and 3 random directions, by central differences
    of the primal reference (float64, h = 1e-6)."""
    batch, learner, params = _fixture("classification")
    names = list(params)
    gradient = flat(learner.meta_gradients(params, batch).gradients, names)

    def loss(p: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            tasks = zip(*batch.tensors(), strict=True)
            return float(torch.stack([_reference_loss(learner, p, *t, "classification") for t in tasks]).mean())

    g = torch.Generator().manual_seed(5)
    own = [name for name in names if name.startswith("ridge.")]
    directions = [{k: (k == name) * torch.ones_like(v) for k, v in params.items()} for name in own]
    directions += [{k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in params.items()} for _ in range(3)]
    for direction in directions:
        h = 1e-6
        plus = {k: v.detach() + h * direction[k] for k, v in params.items()}
        minus = {k: v.detach() - h * direction[k] for k, v in params.items()}
        fd = (loss(plus) - loss(minus)) / (2 * h)
        analytic = float(gradient @ flat(direction, names))
        assert abs(analytic - fd) <= 1e-6 * abs(fd) + 1e-8, (analytic, fd)


def test_initial_values_and_validation():
    params = RidgeInner(5, lambda_init=0.5, scale_init=7.0).init_parameters(64, torch.Generator())
    assert set(params) == {"ridge.log_lambda", "ridge.log_scale"}
    assert params["ridge.log_lambda"].item() == pytest.approx(math.log(0.5))
    assert params["ridge.log_scale"].item() == pytest.approx(math.log(7.0))
    with pytest.raises(ValueError, match="lambda_init"):
        RidgeInner(5, lambda_init=0.0)
    with pytest.raises(ValueError, match="bn_mode"):
        RidgeInner(5, bn_mode="running")
