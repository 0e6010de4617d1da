"""The 'vmap' and 'batched' strategies of MetaLearner compute the same meta-gradient, task losses,
metrics, solve diagnostics and evaluation as 'loop', for every method as the registry builds them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.device.convolutions import NHWC_MIN_PIXELS, large_pass
from benchmarks.learner.backbones import BackboneSpec
from benchmarks.learner.meta_learner import MetaLearner
from benchmarks.learner.registry import METHODS, build_inner, build_outer, build_regularizer
from benchmarks.runs.build import execution_for as resolve_execution
from benchmarks.runs.config import ConfigError, resolve
from support.synthetic import (
    build_learner,
    cast_batch,
    flat,
    image_batch,
    single_thread,
    sinusoid_batch,
    tiny_conv_spec,
)

METHOD_NAMES = list(METHODS)
REGRESSION_METHODS = [m for m in METHODS if "regression" in METHODS[m].inner_loop.task_kinds]
# float32: the two strategies sum in different orders; the measured max deviation is at most 7e-7 of
# the gradient scale over the methods (5e-7 for the two controls), so these bounds leave an order of magnitude.
FLOAT32_RTOL = 1e-4
FLOAT32_ATOL_FRACTION = 1e-5
# rows per task of 12 x 12 images (tiny_conv_spec) from which a pass is large enough for NHWC
LARGE_ROWS = -(-NHWC_MIN_PIXELS // (12 * 12))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _learners(method: str, dtype: torch.dtype, bn_mode: str = "transductive", dataset: str = "omniglot"):
    extra = {"n_way": 3, "k_shot": 2} if dataset == "omniglot" else {}
    values = {"method": method, "dataset": dataset, "bn_mode": bn_mode, "kernel.sigma_init": "sqrt_d", **extra}
    config = resolve(values)
    spec = tiny_conv_spec() if dataset == "omniglot" else BackboneSpec(kind="mlp")
    out = {}
    for strategy in ("loop", "vmap", "batched"):
        out[strategy] = build_learner(
            spec, build_inner(config), build_outer(config), build_regularizer(config), strategy, dtype=dtype
        )
    return out


def _assert_same(loop, vmap, dtype: torch.dtype, scale: float) -> None:
    if dtype == torch.float64:
        torch.testing.assert_close(vmap, loop, rtol=1e-10, atol=1e-10 * scale)
    else:
        torch.testing.assert_close(vmap, loop, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL_FRACTION * scale)


@pytest.mark.parametrize(
    ("dtype", "bn_mode"),
    [(torch.float64, "transductive"), (torch.float64, "inductive"), (torch.float32, "transductive")],
    ids=["float64-transductive", "float64-inductive", "float32-transductive"],
)
@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("other", ["vmap", "batched"])
def test_batched_strategies_agree_with_the_loop_on_classification(
    method: str, dtype: torch.dtype, bn_mode: str, other: str
):
    """Tiny Conv-4, 3-way 2-shot, 3 tasks. Catches a batched path that loses the per-task weighting,
    the regularizer, the first-order detach, or batch-norm statistics of the right rows and tasks."""
    g = torch.Generator().manual_seed(31)
    batch = cast_batch(image_batch(g, n_tasks=3, n_way=3), dtype)
    learners = _learners(method, dtype, bn_mode)
    (loop, params), (vmap, _) = learners["loop"], learners[other]
    names = list(params)
    a, b = loop.meta_gradients(params, batch), vmap.meta_gradients(params, batch)
    scale = float(flat(a.gradients, names).abs().max())
    assert scale > 0
    _assert_same(flat(a.gradients, names), flat(b.gradients, names), dtype, scale)
    _assert_same(a.task_losses, b.task_losses, dtype, 1.0)
    torch.testing.assert_close(b.task_metrics, a.task_metrics)
    assert torch.equal(a.jitter_retries, b.jitter_retries) and torch.equal(a.solve_failed, b.solve_failed)

    metric_loop, loss_loop = loop.evaluate(params, batch)
    metric_vmap, loss_vmap = vmap.evaluate(params, batch)
    torch.testing.assert_close(metric_vmap, metric_loop)
    _assert_same(loss_loop, loss_vmap, dtype, 1.0)


@pytest.mark.parametrize("method", REGRESSION_METHODS)
@pytest.mark.parametrize("other", ["vmap", "batched"])
def test_batched_strategies_agree_with_the_loop_on_regression(method: str, other: str):
    """MLP on sinusoid regression (the kernel inner loop fits y itself, the gradient one has 1 output)."""
    g = torch.Generator().manual_seed(32)
    batch = sinusoid_batch(g, n_tasks=3, k_support=5, k_query=5, dtype=torch.float64)
    learners = _learners(method, torch.float64, dataset="sinusoid")
    (loop, params), (vmap, _) = learners["loop"], learners[other]
    names = list(params)
    a, b = loop.meta_gradients(params, batch), vmap.meta_gradients(params, batch)
    scale = float(flat(a.gradients, names).abs().max())
    assert scale > 0
    _assert_same(flat(a.gradients, names), flat(b.gradients, names), torch.float64, scale)
    _assert_same(a.task_metrics, b.task_metrics, torch.float64, 1.0)
    metric_loop, loss_loop = loop.evaluate(params, batch)
    metric_vmap, loss_vmap = vmap.evaluate(params, batch)
    _assert_same(metric_loop, metric_vmap, torch.float64, 1.0)
    _assert_same(loss_loop, loss_vmap, torch.float64, 1.0)


@pytest.mark.parametrize("k_shot", [2, LARGE_ROWS // 3 + 1])
@pytest.mark.parametrize("bn_mode", ["transductive", "inductive"])
@pytest.mark.parametrize("method", ["maml", "fomaml", "amfs"])
def test_batched_nhwc_centred_agrees_with_the_loop(method: str, bn_mode: str, k_shot: int):
    """backbone.conv 'nhwc-centred': the query pass (large_pass) in NHWC with
    centred batch-norm inputs, the support pass in NCHW when small (k_shot 2) or differentiated twice
    (second-order MAML), else in NHWC too; float64, so any difference is a different function (a
    centring that is differentiated, statistics of the wrong rows), not rounding."""
    g = torch.Generator().manual_seed(34)
    batch = image_batch(g, n_tasks=3, n_way=3, k_shot=k_shot, n_query=LARGE_ROWS // 3 + 1, dtype=torch.float64)
    assert large_pass(batch.query_x.shape[1], *batch.query_x.shape[-2:])
    assert large_pass(batch.support_x.shape[1], *batch.support_x.shape[-2:]) == (k_shot > 2)
    config = resolve({"method": method, "dataset": "omniglot", "n_way": 3, "k_shot": k_shot, "bn_mode": bn_mode})
    parts = (build_inner(config), build_outer(config), build_regularizer(config))
    loop, params = build_learner(tiny_conv_spec(), *parts, strategy="loop")
    nhwc, _ = build_learner(tiny_conv_spec("nhwc-centred"), *parts, strategy="batched")
    names = list(params)
    a, b = loop.meta_gradients(params, batch), nhwc.meta_gradients(params, batch)
    scale = float(flat(a.gradients, names).abs().max())
    assert scale > 0
    _assert_same(flat(a.gradients, names), flat(b.gradients, names), torch.float64, scale)
    _assert_same(loop.evaluate(params, batch)[1], nhwc.evaluate(params, batch)[1], torch.float64, 1.0)


@pytest.mark.parametrize("method", ["maml", "fomaml"])
def test_nhwc_centred_keeps_passes_differentiated_twice_in_nchw(monkeypatch, method: str):
    """Which passes of a meta-batch whose support and query passes are both large (large_pass) run in NHWC:
    all of them, except second-order MAML's support passes in training, whose double backward is
    slow in NHWC on the CPU. Test-time adaptation is never differentiated twice."""
    import benchmarks.learner.backbones as backbones

    nhwc_rows: list[int] = []
    centre = backbones.centre_channels
    monkeypatch.setattr(backbones, "centre_channels", lambda h: nhwc_rows.append(h.shape[0]) or centre(h))
    g = torch.Generator().manual_seed(35)
    k_shot, n_query = LARGE_ROWS // 3 + 1, LARGE_ROWS // 3 + 2
    batch = image_batch(g, n_tasks=2, n_way=3, k_shot=k_shot, n_query=n_query, dtype=torch.float64)
    values = {"n_way": 3, "k_shot": k_shot, "inner.steps_train": 2, "bn_mode": "transductive"}
    config = resolve({"method": method, "dataset": "omniglot", **values})
    parts = (build_inner(config), build_outer(config), build_regularizer(config))
    learner, params = build_learner(tiny_conv_spec("nhwc-centred"), *parts, strategy="batched")
    learner.meta_gradients(params, batch)
    support_in_nhwc = 2 * 4 if method == "fomaml" else 0  # 2 inner steps, 4 layers
    assert sorted(nhwc_rows) == [3 * k_shot] * support_in_nhwc + [3 * n_query] * 4
    nhwc_rows.clear()
    learner.evaluate(params, batch)
    assert 3 * k_shot in nhwc_rows


@pytest.mark.parametrize("method", ["maml", "amfs"])
def test_meta_gradients_carry_no_autograd_graph(method: str):
    """The meta-gradient is handed to the optimiser as p.grad. If it still referenced the autograd graph
    of its own computation (torch.func.grad applied to parameters that require grad records one),
    that graph and its saved activations would stay alive until the next step: more memory for the
    'vmap' strategy than for 'loop', and a distorted peak-memory measurement."""
    g = torch.Generator().manual_seed(33)
    batch = image_batch(g, n_tasks=2, n_way=3)
    for strategy, (learner, params) in _learners(method, torch.float32).items():
        result = learner.meta_gradients(params, batch)
        for k, grad in result.gradients.items():
            assert not grad.requires_grad and grad.grad_fn is None, (strategy, k)
        assert all(p.requires_grad and p.is_leaf for p in params.values())


PRODUCTS = (torch.ops.aten.mm, torch.ops.aten.bmm, torch.ops.aten.addmm, torch.ops.aten.baddbmm)


class _ConvolutionDtypes(TorchDispatchMode):
    """Records the dtype of every convolution's input and of every other matrix product's."""

    def __init__(self) -> None:
        super().__init__()
        self.convolutions: set[torch.dtype] = set()
        self.products: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func.overloadpacket in (torch.ops.aten.convolution, torch.ops.aten.convolution_backward):
            self.convolutions.add(args[0].dtype)
        elif func.overloadpacket in (
            torch.ops.aten.mm,
            torch.ops.aten.bmm,
            torch.ops.aten.addmm,
            torch.ops.aten.baddbmm,
        ):
            self.products.add(args[-1].dtype)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", ["maml", "i-amfs"])
@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_bf16_runs_the_backbone_in_bfloat16_and_computes_the_same_function(method: str, strategy: str):
    """precision bf16: every convolution (forward and backward) in bfloat16, the products after the
    features (head, kernel) in float32; in float64, which autocast leaves alone, exactly the float32
    learner's function."""
    config = resolve({"method": method, "dataset": "omniglot", "n_way": 3, "k_shot": 2, "kernel.sigma_init": "sqrt_d"})
    parts = build_inner(config), build_outer(config), build_regularizer(config)
    plain, params = build_learner(tiny_conv_spec(), *parts, strategy, dtype=torch.float32)
    reduced = MetaLearner(plain.backbone, *parts, strategy, backbone_dtype=torch.bfloat16)
    batch = image_batch(torch.Generator().manual_seed(3), n_tasks=2, n_way=3)
    with _ConvolutionDtypes() as seen:
        low = flat(reduced.meta_gradients(params, batch).gradients, list(params))
    assert seen.convolutions == {torch.bfloat16} and seen.products == {torch.float32}
    high = flat(plain.meta_gradients(params, batch).gradients, list(params))
    assert 0 < float((low - high).norm()) < float(high.norm())  # rounded, not another gradient

    params64 = {k: v.detach().double().requires_grad_(True) for k, v in params.items()}
    batch64 = cast_batch(batch, torch.float64)
    plain.backbone.double()
    exact = flat(plain.meta_gradients(params64, batch64).gradients, list(params))
    torch.testing.assert_close(flat(reduced.meta_gradients(params64, batch64).gradients, list(params)), exact)


def test_bf16_is_refused_under_vmap():
    """Under torch.func.vmap autocast leaves some convolutions in float32 (PyTorch 2.14): a bf16 run
    there would not be what its config says."""
    for strategy in ("vmap", "graph"):
        with pytest.raises(ConfigError, match="precision bf16 needs strategy"):
            resolve({"method": "maml", "dataset": "omniglot", "strategy": strategy, "precision": "bf16"})
    cuda = resolve({"method": "i-amfs", "dataset": "omniglot", "precision": "bf16"})
    assert resolve_execution(cuda, torch.device("cuda"))[0].strategy == "batched"  # not vmap, as fp32 would
