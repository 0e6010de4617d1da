"""Shared backbones (benchmarks/learner/backbones.py): seeded, method-independent initialisation; Conv-4 and
MLP shapes; the written-out batch norm."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from benchmarks.device.convolutions import CONV_IMPLS, NHWC_MIN_PIXELS
from benchmarks.learner.backbones import (
    MLP,
    BackboneSpec,
    Conv4,
    backbone_forward,
    backbone_forward_tasks,
    batch_norm,
    build_backbone,
)
from benchmarks.learner.meta_learner import MetaLearner
from benchmarks.learner.registry import METHODS, build_inner, build_outer
from benchmarks.runs.config import resolve
from support.synthetic import single_thread


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _initial_parameters(method: str, seed: int, global_seed: int) -> dict[str, torch.Tensor]:
    """What a run of `method` starts from. The global RNG is reseeded differently before each build,
    so an initialisation that read it would show up as a difference between methods."""
    torch.manual_seed(global_seed)
    config = resolve({"method": method, "dataset": "omniglot", "seed": seed})
    spec = BackboneSpec(kind="conv4", in_channels=1, image_size=28, filters=8, pooling="strided")
    module, backbone_params = build_backbone(spec, config["seed"])
    learner = MetaLearner(module, build_inner(config), build_outer(config))
    return learner.init_parameters(backbone_params, config["seed"])


def test_same_seed_gives_bit_identical_backbones_for_every_method():
    reference = _initial_parameters("maml", seed=3, global_seed=100)
    backbone_names = [k for k in reference if k.startswith("backbone.")]
    assert len(backbone_names) == 12  # 4 convs + 4 x (BN weight, BN bias)
    for i, method in enumerate(METHODS):
        params = _initial_parameters(method, seed=3, global_seed=200 + i)
        assert [k for k in params if k.startswith("backbone.")] == backbone_names
        for k in backbone_names:
            assert torch.equal(params[k], reference[k]), (method, k)
    # Methods with the same inner loop also share its own parameters (the head).
    for method in ("fomaml", "o-amfs"):
        params = _initial_parameters(method, seed=3, global_seed=7)
        assert torch.equal(params["head.weight"], reference["head.weight"])


def test_different_seeds_give_different_backbones():
    a = _initial_parameters("amfs", seed=0, global_seed=0)
    b = _initial_parameters("amfs", seed=1, global_seed=0)
    for k in ("backbone.convs.0", "backbone.convs.3"):
        assert not torch.equal(a[k], b[k])
    # Deterministic parts are the same: BN weight 1, bias 0.
    assert torch.equal(a["backbone.norms.0"], torch.ones(8)) and torch.equal(a["backbone.norms.1"], torch.zeros(8))


def test_initial_parameters_are_trainable_copies():
    module, params = build_backbone(BackboneSpec(filters=4), seed=0)
    learner = MetaLearner(module, build_inner(resolve({"n_way": 5})), build_outer(resolve({})))
    own = learner.init_parameters(params, seed=0)
    assert all(v.requires_grad and v.is_leaf for v in own.values())
    own["backbone.convs.0"].data.add_(1.0)
    assert not torch.equal(own["backbone.convs.0"], params["backbone.convs.0"])


@pytest.mark.parametrize(
    ("channels", "filters", "pooling", "size", "feature_dim"),
    [
        (1, 64, "strided", 28, 64),  # Omniglot (Finn et al.): 28 -> 14 -> 7 -> 4 -> 2, spatial mean
        (3, 32, "max", 84, 32 * 5 * 5),  # mini-ImageNet / CUB: 84 -> 42 -> 21 -> 10 -> 5, flattened
        (3, 32, "max", 32, 32 * 2 * 2),  # FC100: 32 -> 16 -> 8 -> 4 -> 2, flattened
    ],
)
def test_conv4_feature_sizes(channels: int, filters: int, pooling: str, size: int, feature_dim: int):
    module, params = build_backbone(BackboneSpec("conv4", channels, size, filters, pooling), seed=0)
    assert module.feature_dim == feature_dim
    x = torch.randn(3, channels, size, size, generator=torch.Generator().manual_seed(0))
    assert backbone_forward(module, params, x).shape == (3, feature_dim)


@pytest.mark.parametrize("conv_impl", CONV_IMPLS)
def test_conv4_matches_a_plain_implementation(conv_impl: str):
    """Conv-4 (both pooling variants, both convolution implementations) against F.conv2d /
    F.batch_norm / F.relu / F.max_pool2d written here: catches a wrong stride, padding, block order,
    pooling, or an im2col that mixes channels and kernel positions."""
    module, params = build_backbone(BackboneSpec("conv4", 1, 28, 8, "strided", conv_impl), seed=5)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert module.conv_impl == conv_impl
    params = {k: v.double() for k, v in params.items()}
    h = x
    for i in range(4):
        h = F.conv2d(h, params[f"backbone.convs.{i}"], stride=2, padding=1)
        w, b = params[f"backbone.norms.{2 * i}"], params[f"backbone.norms.{2 * i + 1}"]
        h = F.relu(F.batch_norm(h, None, None, w, b, training=True, eps=1e-5))
    torch.testing.assert_close(backbone_forward(module, params, x), h.mean(dim=(2, 3)), rtol=1e-10, atol=1e-12)

    max_module, max_params = build_backbone(BackboneSpec("conv4", 1, 28, 8, "max", conv_impl), seed=5)
    max_params = {k: v.double() for k, v in max_params.items()}
    h = x
    for i in range(4):
        h = F.conv2d(h, max_params[f"backbone.convs.{i}"], padding=1)
        w, b = max_params[f"backbone.norms.{2 * i}"], max_params[f"backbone.norms.{2 * i + 1}"]
        h = F.max_pool2d(F.relu(F.batch_norm(h, None, None, w, b, training=True, eps=1e-5)), 2)
    torch.testing.assert_close(backbone_forward(max_module, max_params, x), h.flatten(1), rtol=1e-10, atol=1e-12)


def test_too_small_image_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        Conv4(pooling="max", image_size=8)


def test_mlp_backbone():
    """Finn et al.'s sinusoid network without its output layer: 1 -> 40 -> 40, ReLU after each."""
    module, params = build_backbone(BackboneSpec(kind="mlp"), seed=0)
    assert isinstance(module, MLP) and module.feature_dim == 40
    assert [tuple(params[k].shape) for k in params] == [(40, 1), (40,), (40, 40), (40,)]
    assert torch.equal(params["backbone.layers.0.bias"], torch.zeros(40))
    x = torch.linspace(-5, 5, 7).unsqueeze(1)
    expected = F.relu(F.relu(x @ params["backbone.layers.0.weight"].T) @ params["backbone.layers.1.weight"].T)
    torch.testing.assert_close(backbone_forward(module, params, x), expected)
    vector = build_backbone(BackboneSpec(kind="mlp", in_channels=8), seed=0)[1]
    assert vector["backbone.layers.0.weight"].shape == (40, 8)


def test_unknown_backbone_is_rejected():
    with pytest.raises(ValueError, match="conv4, mlp"):
        build_backbone(BackboneSpec(kind="resnet"), seed=0)


def test_batch_norm_transductive_and_inductive():
    """Transductive: F.batch_norm from the whole batch. Inductive: statistics of the first n rows only,
    so a query row's output does not depend on the other query rows."""
    g = torch.Generator().manual_seed(2)
    h = torch.randn(7, 3, 4, 4, generator=g, dtype=torch.float64)
    weight = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    bias = torch.randn(3, generator=g, dtype=torch.float64)
    expected = F.batch_norm(h, None, None, weight, bias, training=True, eps=1e-5)
    torch.testing.assert_close(batch_norm(h, weight, bias, None), expected, rtol=1e-12, atol=1e-12)

    inductive = batch_norm(h, weight, bias, 4)
    support_only = F.batch_norm(h[:4], None, None, weight, bias, training=True, eps=1e-5)
    torch.testing.assert_close(inductive[:4], support_only, rtol=1e-12, atol=1e-12)
    changed = h.clone()
    changed[6] += 10.0
    torch.testing.assert_close(batch_norm(changed, weight, bias, 4)[4:6], inductive[4:6], rtol=0, atol=0)
    assert not torch.allclose(batch_norm(changed, weight, bias, None)[4:6], expected[4:6])


@pytest.mark.parametrize("conv_impl", ["cudnn", "cudnn-nhwc", "nhwc-centred"])
@pytest.mark.parametrize("pooling", ["strided", "max"])
@pytest.mark.parametrize("stats_rows", [None, 2])
@pytest.mark.parametrize("rows", [5, -(-NHWC_MIN_PIXELS // (20 * 20))])  # a small pass and a large one
def test_all_tasks_at_once_equal_each_task_alone(conv_impl: str, pooling: str, stats_rows: int | None, rows: int):
    """forward_tasks (tasks side by side, grouped convolutions) against forward() task by task, each
    task with its own weights: catches channels of one task leaking into another, batch-norm
    statistics pooled over tasks, or features flattened in another order."""
    module, params = build_backbone(BackboneSpec("conv4", 3, 20, 4, pooling, conv_impl), seed=5)
    g = torch.Generator().manual_seed(2)
    tasks = 3
    per_task = {k: (v.double() + 0.1 * torch.randn(tasks, *v.shape, generator=g).double()) for k, v in params.items()}
    x = torch.randn(tasks, rows, 3, 20, 20, generator=g, dtype=torch.float64)
    together = backbone_forward_tasks(module, per_task, x, stats_rows)
    for t in range(tasks):
        alone = backbone_forward(module, {k: v[t] for k, v in per_task.items()}, x[t], stats_rows)
        torch.testing.assert_close(together[t], alone, rtol=1e-10, atol=1e-12)


def test_mlp_tasks_at_once_equal_each_task_alone():
    module, params = build_backbone(BackboneSpec(kind="mlp"), seed=3)
    g = torch.Generator().manual_seed(4)
    per_task = {k: v.double() + torch.randn(2, *v.shape, generator=g).double() for k, v in params.items()}
    x = torch.randn(2, 7, 1, generator=g, dtype=torch.float64)
    together = backbone_forward_tasks(module.double(), per_task, x)
    for t in range(2):
        alone = backbone_forward(module, {k: v[t] for k, v in per_task.items()}, x[t])
        torch.testing.assert_close(together[t], alone, rtol=1e-10, atol=1e-12)
