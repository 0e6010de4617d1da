"""The RBF kernel and the closed-form kernel-ridge solve of I-AMFS (docs/methods.md, "I-AMFS kernel-ridge inner loop"),
against float64 brute force, against the minimiser reached by gradient descent, and on singular
systems that need the jitter retry; then the I-AMFS inner loop (amfs/kernel_inner.py): its outputs,
its exact and first-order meta-gradients against finite differences, and its sigma initialisations."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from amfs import KernelInner
from amfs.kernel import kernel_ridge_solve, rbf_kernel
from benchmarks.learner.backbones import BackboneSpec
from support.synthetic import blob_batch, build_learner, cast_batch, flat, single_thread, sinusoid_batch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _systems(batch: int = 4, n: int = 9, d: int = 3, m: int = 3, seed: int = 0, dtype=torch.float64):
    """Batched RBF kernels of random points, targets and the shared sigma."""
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(batch, n, d, generator=g, dtype=dtype)
    targets = torch.randn(batch, n, m, generator=g, dtype=dtype)
    sigma = torch.tensor(1.3, dtype=dtype)
    return points, targets, sigma


def test_rbf_kernel_matches_pairwise_formula():
    """k(a, b) = exp(-||a - b||^2 / (2 sigma^2)); catches a missing factor 2, sigma instead of sigma^2,
    or a transposed result."""
    points, _, sigma = _systems()
    others = points[:, :5] + 0.3
    k = rbf_kernel(points, others, sigma)
    assert k.shape == (4, 9, 5)
    for b in range(4):
        for i in range(9):
            for j in range(5):
                sq = float(((points[b, i] - others[b, j]) ** 2).sum())
                assert math.isclose(float(k[b, i, j]), math.exp(-sq / (2 * 1.3**2)), rel_tol=1e-12)
    assert torch.equal(
        rbf_kernel(points, points, sigma).diagonal(dim1=-2, dim2=-1), torch.ones(4, 9, dtype=points.dtype)
    )


def test_closed_form_equals_float64_brute_force():
    """alpha = (K + lambda I)^-1 Y on a batch of 4 systems, against torch.linalg.solve in float64:
    catches a wrong ridge term (lambda missing, lambda^2, lambda on the wrong side), a batch mix-up
    or a solve that uses only part of the matrix. float32 inputs must agree to float32 accuracy."""
    points, targets, sigma = _systems()
    lam = torch.tensor(0.05, dtype=torch.float64)
    kernel = rbf_kernel(points, points, sigma)
    eye = torch.eye(kernel.shape[-1], dtype=torch.float64)
    reference = torch.linalg.solve(kernel + lam * eye, targets)

    solve = kernel_ridge_solve(kernel, targets, lam)
    torch.testing.assert_close(solve.alpha, reference, rtol=1e-10, atol=1e-10)
    assert torch.equal(solve.retries, torch.zeros(4, dtype=torch.int32))
    assert not solve.failed.any()

    solve32 = kernel_ridge_solve(kernel.float(), targets.float(), lam.float())
    scale = reference.abs().max()
    torch.testing.assert_close(solve32.alpha.double(), reference, rtol=1e-4, atol=1e-4 * float(scale))


def test_closed_form_is_the_minimiser_reached_by_gradient_descent():
    """The dual kernel-ridge objective J(a) = 0.5 a^T (K + lambda I) a - a^T y (per target column;
    strictly convex because K is PSD and lambda > 0) has its unique minimiser at (K + lambda I)^-1 y.
    3,000 plain gradient steps of size 1 / trace(K + lambda I) (<= 1 / largest eigenvalue) must land on
    the closed form. Independent of any linear-algebra routine."""
    points, targets, sigma = _systems()
    lam = torch.tensor(0.5, dtype=torch.float64)
    kernel = rbf_kernel(points, points, sigma)
    system = kernel + lam * torch.eye(kernel.shape[-1], dtype=torch.float64)
    step = 1.0 / system.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]

    def objective(a: torch.Tensor) -> torch.Tensor:
        return (0.5 * (a * (system @ a)).sum() - (a * targets).sum()).sum()

    a = torch.zeros_like(targets)
    for _ in range(3000):
        a = a - step * (system @ a - targets)
    alpha = kernel_ridge_solve(kernel, targets, lam).alpha
    torch.testing.assert_close(alpha, a, rtol=1e-9, atol=1e-9)
    # The update above is the objective's gradient step, and no nearby point does better.
    nearby = alpha + 1e-3 * torch.randn(alpha.shape, generator=torch.Generator().manual_seed(1), dtype=alpha.dtype)
    assert float(objective(alpha)) < float(objective(nearby))


def test_solve_gradients_match_finite_differences():
    """Gradients of the solve with respect to the features (through K), sigma, lambda and Y, by
    float64 finite differences (gradcheck): catches a lambda or jitter path that is detached or an
    alpha computed from a no-grad copy of K."""
    points, targets, sigma = _systems(batch=2, n=5, d=2, m=2)
    lam = torch.tensor(0.2, dtype=torch.float64)
    query = points[:, :3] + 0.1

    def scores(p: torch.Tensor, y: torch.Tensor, s: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
        alpha = kernel_ridge_solve(rbf_kernel(p, p, s), y, lm).alpha
        return rbf_kernel(query, p, s) @ alpha

    inputs = tuple(t.clone().requires_grad_(True) for t in (points, targets, sigma, lam))
    assert torch.autograd.gradcheck(scores, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=True)


def _singular_and_well_conditioned(dtype=torch.float32):
    """System 0: duplicated support points (K singular); system 1: points 10 sigma apart (K ~ I)."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(3, 2, generator=g, dtype=dtype)
    duplicated = torch.cat([base, base[:2]])  # rows 3, 4 repeat rows 0, 1
    spread = 10.0 * torch.arange(5, dtype=dtype)[:, None] * torch.tensor([1.0, 0.0], dtype=dtype)
    points = torch.stack([duplicated, spread])
    targets = torch.nn.functional.one_hot(torch.tensor([[0, 1, 2, 0, 1], [0, 1, 2, 0, 1]]), 3).to(dtype)
    return points, targets, torch.tensor(1.0, dtype=dtype)


def test_singular_system_is_retried_with_jitter_and_stays_finite():
    """Duplicate points with lambda = 1e-12 in float32: K + lambda I is not numerically positive
    definite. The solve must retry with jitter (counted for that system only), return finite values
    and a finite gradient; the well-conditioned system in the same batch needs no retry and stays
    exact. Catches a missing retry, a retry applied to the whole batch, an uncounted retry, and NaN
    leaking into the gradient."""
    points, targets, sigma = _singular_and_well_conditioned()
    points.requires_grad_(True)
    log_lam = torch.tensor(math.log(1e-12), requires_grad=True)
    kernel = rbf_kernel(points, points, sigma)
    eye = torch.eye(5)
    # Precondition: without jitter, Cholesky fails on system 0 and succeeds on system 1.
    info = torch.linalg.cholesky_ex(kernel.detach() + 1e-12 * eye).info
    assert info[0] > 0 and info[1] == 0

    solve = kernel_ridge_solve(kernel, targets, log_lam.exp())
    assert int(solve.retries[0]) > 0
    assert int(solve.retries[1]) == 0
    assert not solve.failed.any()
    assert torch.isfinite(solve.alpha).all()
    # System 1 (K = I up to exp(-50)): alpha = Y / (1 + lambda), untouched by system 0's jitter.
    torch.testing.assert_close(solve.alpha[1], targets[1], rtol=1e-6, atol=1e-6)
    # System 0's duplicated rows carry equal targets, so the jittered system still fits them.
    torch.testing.assert_close(kernel[0].detach() @ solve.alpha[0].detach(), targets[0], rtol=0, atol=1e-2)

    query = points.detach()[:, :2] + 0.05
    (rbf_kernel(query, points, sigma) @ solve.alpha).square().sum().backward()
    assert torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0
    assert torch.isfinite(log_lam.grad)


def test_exhausted_retries_report_failure():
    """max_retries = 0 on the singular system: failed is True for it alone, no retry is counted."""
    points, targets, sigma = _singular_and_well_conditioned()
    solve = kernel_ridge_solve(rbf_kernel(points, points, sigma), targets, torch.tensor(1e-12), max_retries=0)
    assert solve.failed.tolist() == [True, False]
    assert solve.retries.tolist() == [0, 0]


def test_retries_are_the_same_under_vmap():
    """The solve runs per task inside torch.func.vmap in the 'vmap' strategy: the retry decisions and
    the result must equal the batched call."""
    points, targets, sigma = _singular_and_well_conditioned()
    lam = torch.tensor(1e-12)
    kernel = rbf_kernel(points, points, sigma)
    batched = kernel_ridge_solve(kernel, targets, lam)
    mapped = torch.func.vmap(kernel_ridge_solve, in_dims=(0, 0, None))(kernel, targets, lam)
    assert torch.equal(mapped.retries, batched.retries)
    assert torch.equal(mapped.failed, batched.failed)
    torch.testing.assert_close(mapped.alpha, batched.alpha)


# --- the I-AMFS inner loop and its meta-gradient ------------------------------------------------------
def _kernel_fixture(task: str, first_order: bool = False, strategy: str = "loop"):
    g = torch.Generator().manual_seed(41)
    if task == "classification":
        batch = cast_batch(blob_batch(g, n_tasks=2, n_way=3, k_shot=2, n_query=3, dim=4), torch.float64)
        spec, inner = BackboneSpec(kind="mlp", in_channels=4), KernelInner(3, first_order=first_order)
    else:
        batch = sinusoid_batch(g, n_tasks=2, k_support=6, k_query=4, dtype=torch.float64)
        spec, inner = BackboneSpec(kind="mlp"), KernelInner(1, task="regression", first_order=first_order)
    learner, params = build_learner(spec, inner, strategy=strategy)
    with torch.no_grad():  # move sigma, lambda and s off their initial values so each one matters
        params["kernel.log_sigma"].add_(0.3)
        params["kernel.log_lambda"].fill_(math.log(0.3))
        params["kernel.log_scale"].fill_(math.log(4.0))
    return batch, learner, params


def _reference_task_loss(learner, params, sx, sy, qx, qy, task: str, first_order: bool = False) -> torch.Tensor:
    """Query loss of one task written from docs/methods.md with a float64 linear solve."""
    f_s, f_q = learner.features(params, sx, None), learner.features(params, qx, None)
    sigma, lam = params["kernel.log_sigma"].exp(), params["kernel.log_lambda"].exp()

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))

    solve_f = f_s.detach() if first_order else f_s
    targets = F.one_hot(sy, 3).double() if task == "classification" else sy
    alpha = torch.linalg.solve(k(solve_f, solve_f) + lam * torch.eye(len(sx), dtype=torch.float64), targets)
    scores = k(f_q, f_s) @ alpha
    if task == "classification":
        return F.cross_entropy(params["kernel.log_scale"].exp() * scores, qy)
    return F.mse_loss(scores, qy)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_kernel_inner_outputs_match_the_spec(task: str):
    """logits = s k(F_Q, F_S) (k(F_S, F_S) + lambda I)^-1 Y_S (regression: no s, Y_S = y): catches sigma,
    lambda or s read from the wrong parameter or not exponentiated, and the scale applied to regression."""
    batch, learner, params = _kernel_fixture(task)
    result = learner.meta_gradients(params, batch)
    expected = torch.stack(
        [_reference_task_loss(learner, params, *t, task) for t in zip(*batch.tensors(), strict=True)]
    ).detach()
    torch.testing.assert_close(result.task_losses, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_kernel_meta_gradient_matches_finite_differences(task: str, strategy: str):
    """The exact I-AMFS meta-gradient: log sigma, log lambda, log s one by one and 3 random directions
    over all parameters, by central differences of the reference loss (float64, h = 1e-6)."""
    batch, learner, params = _kernel_fixture(task, strategy=strategy)
    names = list(params)
    gradients = learner.meta_gradients(params, batch).gradients
    gradient = flat(gradients, names)

    def loss(p: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            return float(
                torch.stack(
                    [_reference_task_loss(learner, p, *t, task) for t in zip(*batch.tensors(), strict=True)]
                ).mean()
            )

    g = torch.Generator().manual_seed(42)
    directions = [
        {k: (k == name) * torch.ones_like(v) for k, v in params.items()} for name in names if "kernel." in name
    ]
    directions += [{k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in params.items()} for _ in range(3)]
    if task == "regression":  # the scale does not enter regression outputs
        assert float(gradients["kernel.log_scale"]) == 0.0
    for direction in directions:
        h = 1e-6
        plus = {k: v.detach() + h * direction[k] for k, v in params.items()}
        minus = {k: v.detach() - h * direction[k] for k, v in params.items()}
        fd = (loss(plus) - loss(minus)) / (2 * h)
        analytic = float(gradient @ flat(direction, names))
        assert abs(analytic - fd) <= 1e-6 * abs(fd) + 1e-8, (analytic, fd)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_first_order_kernel_inner_detaches_only_the_solve(strategy: str):
    """First-order I-AMFS (an assumption, docs/methods.md): alpha from detached support features, the meta-
    gradient reaches theta only through k(F_Q, F_S). Equals the reference with F_S detached in the solve,
    and its backbone gradient differs from the exact one."""
    batch, learner, params = _kernel_fixture("classification", first_order=True, strategy=strategy)
    names = list(params)
    result = flat(learner.meta_gradients(params, batch).gradients, names)
    losses = [
        _reference_task_loss(learner, params, *t, "classification", True) for t in zip(*batch.tensors(), strict=True)
    ]
    expected = torch.autograd.grad(torch.stack(losses).mean(), [params[k] for k in names])
    torch.testing.assert_close(result, torch.cat([e.reshape(-1) for e in expected]), rtol=1e-9, atol=1e-12)

    _, exact_learner, exact_params = _kernel_fixture("classification", strategy=strategy)
    exact = flat(exact_learner.meta_gradients(exact_params, batch).gradients, names)
    backbone = [i for i, k in enumerate(names) for _ in range(params[k].numel()) if k.startswith("backbone.")]
    gap = (exact[backbone] - result[backbone]).norm() / exact[backbone].norm()
    assert gap > 0.05, f"first-order and exact backbone gradients differ by only {float(gap):.3g}"


def test_sigma_initialisations():
    """'sqrt_d': sigma = sqrt(feature dim). 'median': sigma = median pairwise distance between the
    features of the first training meta-batch (support and query of all tasks together)."""
    g = torch.Generator().manual_seed(43)
    batch = cast_batch(blob_batch(g, n_tasks=2, n_way=3, k_shot=2, n_query=3, dim=4), torch.float64)
    learner, params = build_learner(BackboneSpec(kind="mlp", in_channels=4), KernelInner(3, sigma_init="median"))
    assert params["kernel.log_sigma"].item() == pytest.approx(0.5 * math.log(40), rel=1e-6)
    update = learner.inner.data_dependent_init(learner.features, params, batch.support_x, batch.query_x)
    features = learner.features(params, torch.cat([batch.support_x, batch.query_x], 1).flatten(0, 1), None)
    assert float(update["kernel.log_sigma"]) == pytest.approx(
        math.log(torch.pdist(features.detach()).median().item()), rel=1e-9
    )
    assert (
        KernelInner(3, sigma_init="sqrt_d").data_dependent_init(
            learner.features, params, batch.support_x, batch.query_x
        )
        == {}
    )
