"""Small synthetic task families and model builders shared by the tests of the mathematics.

Every generator draws from an explicit torch.Generator, so a test sees the same tasks on every run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from baselines import GradientInner, MeanOuter
from benchmarks.data.tasks import TaskBatch
from benchmarks.learner.backbones import BackboneSpec, build_backbone
from benchmarks.learner.meta_learner import MetaLearner

Params = dict[str, Tensor]


def sinusoid_batch(
    generator: torch.Generator,
    n_tasks: int,
    k_support: int = 10,
    k_query: int = 10,
    dtype: torch.dtype = torch.float32,
) -> TaskBatch:
    """Finn et al. 2017's sinusoid family: y = A sin(x + phase), A ~ U[0.1, 5], phase ~ U[0, pi],
    x ~ U[-5, 5]. x and y are [T, n, 1]."""
    amplitude = 0.1 + 4.9 * torch.rand(n_tasks, 1, 1, generator=generator, dtype=dtype)
    phase = math.pi * torch.rand(n_tasks, 1, 1, generator=generator, dtype=dtype)
    x = -5.0 + 10.0 * torch.rand(n_tasks, k_support + k_query, 1, generator=generator, dtype=dtype)
    y = amplitude * torch.sin(x + phase)
    return TaskBatch(x[:, :k_support], y[:, :k_support], x[:, k_support:], y[:, k_support:])


def blob_batch(
    generator: torch.Generator,
    n_tasks: int,
    n_way: int = 3,
    k_shot: int = 2,
    n_query: int = 4,
    dim: int = 8,
    signal_dims: int = 2,
    separation: float = 2.0,
    nuisance_std: float = 3.0,
    dtype: torch.dtype = torch.float32,
) -> TaskBatch:
    """N-way Gaussian-blob classification in `dim` inputs.

    Each task draws fresh class means in the first `signal_dims` coordinates (std `separation`) with
    unit within-class noise there; the remaining coordinates are class-independent noise of std
    `nuisance_std`. What transfers across tasks is which coordinates matter, so meta-learning has
    something to learn that a randomly initialised network does not already know.
    x: [T, n, dim], y: int64 [T, n], support and query sorted by class.
    """
    per_class = k_shot + n_query
    means = torch.zeros(n_tasks, n_way, 1, dim, dtype=dtype)
    means[..., :signal_dims] = separation * torch.randn(
        n_tasks, n_way, 1, signal_dims, generator=generator, dtype=dtype
    )
    noise_std = torch.ones(dim, dtype=dtype)
    noise_std[signal_dims:] = nuisance_std
    points = means + noise_std * torch.randn(n_tasks, n_way, per_class, dim, generator=generator, dtype=dtype)
    labels = torch.arange(n_way).view(1, n_way, 1).expand(n_tasks, n_way, per_class)
    support_x = points[:, :, :k_shot].reshape(n_tasks, n_way * k_shot, dim)
    query_x = points[:, :, k_shot:].reshape(n_tasks, n_way * n_query, dim)
    support_y = labels[:, :, :k_shot].reshape(n_tasks, n_way * k_shot)
    query_y = labels[:, :, k_shot:].reshape(n_tasks, n_way * n_query)
    return TaskBatch(support_x, support_y, query_x, query_y)


def image_batch(
    generator: torch.Generator,
    n_tasks: int,
    n_way: int = 3,
    k_shot: int = 2,
    n_query: int = 3,
    size: int = 12,
    dtype: torch.dtype = torch.float32,
) -> TaskBatch:
    """Random-pattern image classification for Conv-4: each class is a random 1 x size x size template,
    each example the template plus noise. x: [T, n, 1, size, size], y: int64 [T, n]."""
    per_class = k_shot + n_query
    templates = torch.randn(n_tasks, n_way, 1, 1, size, size, generator=generator, dtype=dtype)
    noise = 0.5 * torch.randn(n_tasks, n_way, per_class, 1, size, size, generator=generator, dtype=dtype)
    images = templates + noise
    labels = torch.arange(n_way).view(1, n_way, 1).expand(n_tasks, n_way, per_class)
    shape = (1, size, size)
    support_x = images[:, :, :k_shot].reshape(n_tasks, n_way * k_shot, *shape)
    query_x = images[:, :, k_shot:].reshape(n_tasks, n_way * n_query, *shape)
    support_y = labels[:, :, :k_shot].reshape(n_tasks, n_way * k_shot)
    query_y = labels[:, :, k_shot:].reshape(n_tasks, n_way * n_query)
    return TaskBatch(support_x, support_y, query_x, query_y)


@contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread for the duration: the tests' tensors are tiny, so one thread is faster and
    does not spin against other processes on shared cores (measured: a test that takes 3 s on one
    thread took 30 s with two threads on two busy cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cast_batch(batch: TaskBatch, dtype: torch.dtype) -> TaskBatch:
    """The batch with float tensors cast to dtype (integer labels unchanged)."""
    return TaskBatch(*(t.to(dtype) if t.is_floating_point() else t for t in batch.tensors()))


def cast_params(params: Params, dtype: torch.dtype) -> Params:
    """Fresh trainable leaves of the given dtype."""
    return {k: v.detach().to(dtype).clone().requires_grad_(True) for k, v in params.items()}


def tiny_conv_spec(conv_impl: str = "cudnn") -> BackboneSpec:
    """Conv-4 with 4 filters on 1 x 12 x 12 images (strided: 12 -> 6 -> 3 -> 2 -> 1), 4 features."""
    return BackboneSpec(kind="conv4", in_channels=1, image_size=12, filters=4, pooling="strided", conv_impl=conv_impl)


def build_learner(
    spec: BackboneSpec,
    inner: object,
    outer: object | None = None,
    regularizer: object | None = None,
    strategy: str = "loop",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[MetaLearner, Params]:
    """A MetaLearner and its initial parameters (cast to dtype)."""
    module, backbone_params = build_backbone(spec, seed)
    learner = MetaLearner(module.to(dtype), inner, outer or MeanOuter(), regularizer, strategy)
    return learner, cast_params(learner.init_parameters(backbone_params, seed), dtype)


def default_gradient_inner(n_outputs: int, **kwargs: object) -> GradientInner:
    """A MAML inner loop with test-friendly defaults (overridable)."""
    settings: dict[str, object] = {"steps_train": 1, "steps_test": 2, "step_size": 0.4} | kwargs
    return GradientInner(n_outputs=n_outputs, **settings)  # type: ignore[arg-type]


def flat(gradients: Params, names: list[str]) -> Tensor:
    """Concatenated flattened gradients in the given name order."""
    return torch.cat([gradients[k].reshape(-1) for k in names])
