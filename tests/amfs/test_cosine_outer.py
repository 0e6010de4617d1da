"""O-AMFS's cosine-weighted outer loop (docs/methods.md, "O-AMFS cosine-weighted outer loop"):

c_i = 1 + (1/(T-1)) sum_{j != i} cos(g_i, g_j),    G = (1/T) sum_i c_i g_i
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from amfs import CosineWeightedOuter, KernelInner, cosine_task_weights
from baselines import MeanOuter
from benchmarks.learner.backbones import BackboneSpec
from support.synthetic import blob_batch, build_learner, cast_batch, default_gradient_inner, flat, single_thread

# g1 = (3, 0, 0), g2 = (2, 2, 0), g3 = (-1, 0, 1):
#   cos(g1, g2) = 6 / (3 * 2 sqrt 2) = 1/sqrt 2 = 0.7071068
#   cos(g1, g3) = -3 / (3 * sqrt 2) = -1/sqrt 2 = -0.7071068
#   cos(g2, g3) = -2 / (2 sqrt 2 * sqrt 2) = -1/2
#   c1 = 1 + (0.7071068 - 0.7071068) / 2 = 1
#   c2 = 1 + (0.7071068 - 0.5) / 2 = 1.1035534
#   c3 = 1 + (-0.7071068 - 0.5) / 2 = 0.3964466
#   G = (1/3) (c1 g1 + c2 g2 + c3 g3)
#     = (1/3) (3 + 2.2071068 - 0.3964466, 2.2071068, 0.3964466) = (1.6035534, 0.7357023, 0.1321489)
HAND_GRADIENTS = [[3.0, 0.0, 0.0], [2.0, 2.0, 0.0], [-1.0, 0.0, 1.0]]
HAND_WEIGHTS = [1.0, 1.0 + (1 / math.sqrt(2) - 0.5) / 2, 1.0 + (-1 / math.sqrt(2) - 0.5) / 2]
HAND_META_GRADIENT = [1.6035534, 0.7357023, 0.1321489]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def test_weights_of_three_hand_made_gradients():
    """Catches: m = T instead of T - 1, the self-similarity cos(g_i, g_i) = 1 left in the sum, dot
    products instead of cosines (g1 and g2 have different norms), and a wrong sign."""
    grads = torch.tensor(HAND_GRADIENTS, dtype=torch.float64)
    weights = cosine_task_weights(grads)
    torch.testing.assert_close(weights, torch.tensor(HAND_WEIGHTS, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert [round(float(w), 7) for w in weights] == [1.0, 1.1035534, 0.3964466]
    combined = CosineWeightedOuter().combine(grads)
    torch.testing.assert_close(combined, torch.tensor(HAND_META_GRADIENT, dtype=torch.float64), rtol=0, atol=1e-7)


def test_weights_ignore_gradient_scale():
    """Cosines depend only on directions: rescaling each task gradient leaves the weights unchanged."""
    grads = torch.tensor(HAND_GRADIENTS, dtype=torch.float64)
    scaled = grads * torch.tensor([[0.01], [7.0], [300.0]], dtype=torch.float64)
    torch.testing.assert_close(cosine_task_weights(scaled), cosine_task_weights(grads), rtol=1e-12, atol=1e-12)


def test_single_task_weight_is_one_and_equals_mean():
    grads = torch.tensor([[0.5, -2.0, 4.0]], dtype=torch.float64)
    assert cosine_task_weights(grads).tolist() == [1.0]
    assert torch.equal(CosineWeightedOuter().combine(grads), MeanOuter().combine(grads))


@pytest.mark.parametrize("n_tasks", [2, 3, 5])
def test_identical_gradients_get_weight_two(n_tasks: int):
    """All cosines are 1, so c_i = 1 + (T-1)/(T-1) = 2 and G = 2 g."""
    g = torch.tensor([0.3, -1.2, 0.7, 2.0], dtype=torch.float64)
    grads = g.repeat(n_tasks, 1)
    torch.testing.assert_close(cosine_task_weights(grads), torch.full((n_tasks,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(CosineWeightedOuter().combine(grads), 2.0 * g)


def test_weights_are_constants_for_the_optimiser():
    """The weights are plain numbers: d G / d g_i = c_i / T, with no term through the cosines."""
    grads = torch.tensor(HAND_GRADIENTS, dtype=torch.float64, requires_grad=True)
    CosineWeightedOuter().combine(grads).sum().backward()
    expected = torch.tensor(HAND_WEIGHTS, dtype=torch.float64)[:, None].expand(3, 3) / 3
    torch.testing.assert_close(grads.grad, expected, rtol=1e-12, atol=1e-12)


def _inner(kind: str):
    if kind == "gradient":
        return default_gradient_inner(3, steps_train=1, step_size=0.4)
    return KernelInner(n_outputs=3, sigma_init="sqrt_d")


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("inner_kind", ["gradient", "kernel"])
def test_meta_gradient_is_the_cosine_weighted_mean_of_per_task_gradients(inner_kind: str, strategy: str):
    """MetaLearner with the cosine outer loop equals (1/T) sum_i c_i g_i, where each g_i comes from a
    separate one-task meta-batch with the mean outer loop and c_i from torch's cosine_similarity.
    Catches per-task gradients mixed between tasks, a mis-split flat vector (names in a different
    order than the offsets), and the mean outer loop used by mistake."""
    g = torch.Generator().manual_seed(21)
    batch = cast_batch(blob_batch(g, n_tasks=4, n_way=3, k_shot=2, n_query=3, dim=4), torch.float64)
    spec = BackboneSpec(kind="mlp", in_channels=4)
    learner, params = build_learner(spec, _inner(inner_kind), CosineWeightedOuter(), strategy=strategy)
    names = list(params)
    single, _ = build_learner(spec, _inner(inner_kind), MeanOuter(), strategy="loop")

    per_task = torch.stack([flat(single.meta_gradients(params, batch.task(i)).gradients, names) for i in range(4)])
    cos = torch.nn.functional.cosine_similarity(per_task[:, None, :], per_task[None, :, :], dim=-1)
    weights = torch.stack([1 + (cos[i].sum() - cos[i, i]) / 3 for i in range(4)])
    assert not torch.allclose(weights, torch.ones(4, dtype=torch.float64), atol=0.05), "fixture gives trivial weights"
    expected = (weights[:, None] * per_task).sum(0) / 4

    result = learner.meta_gradients(params, batch)
    torch.testing.assert_close(flat(result.gradients, names), expected, rtol=1e-9, atol=1e-12)
    mean = per_task.mean(0)
    assert (flat(result.gradients, names) - mean).norm() > 1e-3 * mean.norm()


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_one_task_cosine_outer_equals_mean_outer(strategy: str):
    """With T = 1 O-AMFS is its inner loop's plain version (MAML here)."""
    g = torch.Generator().manual_seed(22)
    batch = cast_batch(blob_batch(g, n_tasks=1, n_way=3, k_shot=2, n_query=3, dim=4), torch.float64)
    spec = BackboneSpec(kind="mlp", in_channels=4)
    cosine, params = build_learner(spec, _inner("gradient"), CosineWeightedOuter(), strategy=strategy)
    mean, _ = build_learner(spec, _inner("gradient"), MeanOuter(), strategy=strategy)
    names = list(params)
    torch.testing.assert_close(
        flat(cosine.meta_gradients(params, batch).gradients, names),
        flat(mean.meta_gradients(params, batch).gradients, names),
        rtol=1e-12,
        atol=1e-14,
    )
