"""The initial parameters a run starts from (benchmarks/runs/build.py, `assemble`): MAML's head is drawn
as Finn et al.'s code draws it for the dataset's protocol (head.init = reference), and head.init changes
nothing but the gradient inner loop's head."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

from baselines.maml import TRUNCATED_NORMAL_STD
from benchmarks.data.datasets import dataset_info
from benchmarks.learner.registry import METHODS, composition
from benchmarks.runs.build import assemble
from benchmarks.runs.config import CHOICES, resolve
from support.distributions import (
    ks_bound,
    ks_distance,
    normal_cdf,
    truncated_normal_cdf,
    truncated_normal_std,
    uniform_cdf,
)
from support.synthetic import single_thread

CPU = torch.device("cpu")
MIN_DRAWS = 4000  # head weights pooled over seeds: a KS distance of 0.031 has p about 0.001


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _initial(values: dict) -> dict[str, Tensor]:
    return {k: v.detach() for k, v in assemble(resolve(values), CPU).params.items()}


def _pooled_head(dataset: str, **values) -> tuple[Tensor, Tensor, int]:
    """MAML's head weights over as many seeds as make MIN_DRAWS, all its biases, and its feature count."""
    weights, biases = [], []
    seed = 0
    while sum(w.numel() for w in weights) < MIN_DRAWS:
        params = _initial({"method": "maml", "dataset": dataset, "seed": seed, **values})
        weights.append(params["head.weight"].flatten())
        biases.append(params["head.bias"])
        seed += 1
    return torch.cat(weights), torch.cat(biases), params["head.weight"].shape[1]


def test_omniglot_reference_head_is_standard_normal():
    """cbfinn/maml, maml.py, construct_conv_weights: w5 = tf.random_normal([64, N]), b5 = 0."""
    weight, bias, _ = _pooled_head("omniglot")
    assert torch.equal(bias, torch.zeros_like(bias))
    assert abs(weight.mean().item()) < 0.06 and abs(weight.std().item() - 1.0) < 0.04
    bound = ks_bound(weight.numel())
    assert ks_distance(weight, normal_cdf(1.0)) < bound
    assert ks_distance(weight, uniform_cdf(math.sqrt(6 / (64 + 5)))) > 10 * bound  # not the Xavier draw


@pytest.mark.parametrize("dataset", ["mini-imagenet", "cub", "fc100"])
def test_mini_imagenet_protocol_reference_head_is_xavier_uniform(dataset: str):
    """cbfinn/maml, maml.py, construct_conv_weights: w5 from tf.contrib.layers.xavier_initializer (uniform by
    default) when the data source is miniimagenet, b5 = 0; CUB and FC100 borrow that protocol."""
    weight, bias, features = _pooled_head(dataset)
    assert torch.equal(bias, torch.zeros_like(bias))
    limit = math.sqrt(6 / (features + 5))
    assert weight.abs().max().item() <= limit
    assert ks_distance(weight, uniform_cdf(limit)) < ks_bound(weight.numel())


def test_sinusoid_reference_head_is_truncated_normal_with_std_001():
    """cbfinn/maml, maml.py, construct_fc_weights: the output layer tf.truncated_normal([40, 1], stddev=0.01),
    bias 0."""
    weight, bias, _ = _pooled_head("sinusoid")
    assert torch.equal(bias, torch.zeros_like(bias))
    assert weight.abs().max().item() <= 2 * TRUNCATED_NORMAL_STD
    assert abs(weight.std().item() / truncated_normal_std(TRUNCATED_NORMAL_STD) - 1) < 0.05
    assert ks_distance(weight, truncated_normal_cdf(TRUNCATED_NORMAL_STD)) < ks_bound(weight.numel())


@pytest.mark.parametrize("dataset", ["omniglot", "sinusoid"])
def test_xavier_and_zero_heads_on_every_dataset(dataset: str):
    weight, _, features = _pooled_head(dataset, **{"head.init": "xavier"})
    outputs = 1 if dataset == "sinusoid" else 5
    limit = math.sqrt(6 / (features + outputs))
    assert weight.abs().max().item() <= limit
    assert ks_distance(weight, uniform_cdf(limit)) < ks_bound(weight.numel())
    zero = _initial({"method": "maml", "dataset": dataset, "head.init": "zero"})
    assert not zero["head.weight"].any() and not zero["head.bias"].any()


@pytest.mark.parametrize("dataset", ["omniglot", "mini-imagenet", "sinusoid"])
def test_head_init_changes_only_the_gradient_inner_loops_head(dataset: str):
    """Every method's backbone, and every parameter of the kernel-inner-loop methods (I-AMFS, AMFS), are
    the same whatever head.init is; the gradient inner loop's head is what differs."""
    for method in METHODS:
        if dataset_info(dataset).task not in METHODS[method].inner_loop.task_kinds:
            continue  # runs.config refuses it (ProtoNet on regression)
        drawn = {
            init: _initial({"method": method, "dataset": dataset, "seed": 3, "head.init": init})
            for init in CHOICES["head.init"]
        }
        reference = drawn["reference"]
        gradient = composition(resolve({"method": method, "dataset": dataset}))[0] == "gradient"
        for init, params in drawn.items():
            assert params.keys() == reference.keys()
            for k, v in params.items():
                if gradient and k.startswith("head."):
                    continue
                assert torch.equal(v, reference[k]), (method, init, k)
        if gradient:
            assert not torch.equal(drawn["zero"]["head.weight"], reference["head.weight"])
            if dataset != "mini-imagenet":  # there the reference is the Xavier draw itself
                assert not torch.equal(drawn["xavier"]["head.weight"], reference["head.weight"])
            else:
                assert torch.equal(drawn["xavier"]["head.weight"], reference["head.weight"])
