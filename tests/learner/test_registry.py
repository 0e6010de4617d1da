"""The method registry and config composition (benchmarks/learner/registry.py, benchmarks/runs/config.py):
the named methods are the pairings of docs/methods.md's table, and the ablation pairings are
reachable from config."""

from __future__ import annotations

import contextlib
import io

import pytest

from amfs import CompositeRegularizer, CosineWeightedOuter, KernelInner
from baselines import GradientInner, MeanOuter, PrototypeInner, RidgeInner
from benchmarks.cli import main
from benchmarks.learner.registry import METHODS, build_inner, build_outer, build_regularizer, method_spec
from benchmarks.runs.config import DEFAULTS, ConfigError, parse_assignments, resolve

# docs/methods.md, "Methods as compositions":
# method -> (inner loop class, second order?, outer loop class, regularizer on?)
TABLE = {
    "maml": (GradientInner, True, MeanOuter, False),
    "fomaml": (GradientInner, False, MeanOuter, False),
    "i-amfs": (KernelInner, True, MeanOuter, False),
    "o-amfs": (GradientInner, True, CosineWeightedOuter, False),
    "amfs": (KernelInner, True, CosineWeightedOuter, True),
    "ridge": (RidgeInner, True, MeanOuter, False),
    "protonet": (PrototypeInner, True, MeanOuter, False),
}
INNER_NAMES = {GradientInner: "gradient", KernelInner: "kernel", RidgeInner: "ridge", PrototypeInner: "prototypes"}


def _config(method: str, **values) -> dict:
    return resolve({"method": method, **values})


def test_registry_holds_exactly_the_methods_of_the_table():
    assert set(METHODS) == set(TABLE)


@pytest.mark.parametrize("method", list(TABLE))
def test_builders_give_the_pairings_of_the_spec(method: str):
    inner_cls, second_order, outer_cls, regularized = TABLE[method]
    config = _config(method)
    inner = build_inner(config)
    assert type(inner) is inner_cls
    assert inner.first_order is (not second_order)
    assert type(build_outer(config)) is outer_cls
    regularizer = build_regularizer(config)
    assert (regularizer is not None) is regularized
    if regularized:
        assert isinstance(regularizer, CompositeRegularizer) and regularizer.mu > 0 and regularizer.gamma > 0


def test_gradient_inner_follows_the_dataset_protocol():
    """docs/protocol.md: Omniglot 5-way 1 / 3 steps of 0.4; mini-ImageNet 5 / 10 steps of 0.01."""
    omniglot = build_inner(_config("maml", dataset="omniglot", n_way=5))
    assert (omniglot.steps_train, omniglot.steps_test, omniglot.step_size) == (1, 3, 0.4)
    mini = build_inner(_config("maml", dataset="mini-imagenet", n_way=5))
    assert (mini.steps_train, mini.steps_test, mini.step_size) == (5, 10, 0.01)
    sinusoid = build_inner(_config("maml", dataset="sinusoid"))
    assert (sinusoid.n_outputs, sinusoid.task) == (1, "regression")


def test_methods_command_lists_every_method():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["methods"]) == 0
    lines = out.getvalue().splitlines()
    for column in ("method", "inner loop", "outer loop", "regularizer"):
        assert column in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[2:] if line.split() and line.split()[0] in TABLE}
    assert set(rows) == set(TABLE)
    for method, (inner_cls, _, outer_cls, regularized) in TABLE.items():
        inner_name = INNER_NAMES[inner_cls]
        outer_name = "mean" if outer_cls is MeanOuter else "cosine"
        assert rows[method][1:4] == [inner_name, outer_name, "on" if regularized else "off"], rows[method]


def test_first_order_i_amfs_from_config():
    for config in (_config("i-amfs", first_order=True), _config("i-amfs", **parse_assignments(["first_order=true"]))):
        inner = build_inner(config)
        assert isinstance(inner, KernelInner) and inner.first_order


def test_amfs_without_regularizer_from_config():
    config = _config("amfs", **{"regularizer.mu": 0.0, "regularizer.gamma": 0})
    assert build_regularizer(config) is None
    assert isinstance(build_inner(config), KernelInner) and isinstance(build_outer(config), CosineWeightedOuter)
    only_information = build_regularizer(_config("amfs", **{"regularizer.mu": 0.0}))
    assert only_information is not None and only_information.mu == 0 and only_information.gamma > 0


def test_o_amfs_over_the_kernel_inner_loop_from_config():
    config = _config("o-amfs", **parse_assignments(["compose.inner=kernel"]))
    assert isinstance(build_inner(config), KernelInner)
    assert isinstance(build_outer(config), CosineWeightedOuter)
    assert build_regularizer(config) is None
    mean_maml = _config("o-amfs", **{"compose.outer": "mean"})
    assert isinstance(build_outer(mean_maml), MeanOuter) and isinstance(build_inner(mean_maml), GradientInner)


def test_sign_options_reach_the_regularizer():
    config = _config("amfs", **parse_assignments(["regularizer.mu_sign=-1", "regularizer.gamma_sign=-1"]))
    regularizer = build_regularizer(config)
    assert (regularizer.mu_sign, regularizer.gamma_sign) == (-1.0, -1.0)


def test_unknown_key_lists_valid_settings():
    with pytest.raises(ConfigError) as error:
        resolve({"method": "amfs", "regulariser.mu": 0.1})
    message = str(error.value)
    assert "regulariser.mu" in message and "did you mean regularizer.mu" in message
    assert all(key in message for key in DEFAULTS)
    with pytest.raises(ConfigError, match="Valid settings"):
        parse_assignments(["inner.stepsize=0.1"])


@pytest.mark.parametrize(
    "values",
    [
        {"meta_batch": 2.5},
        {"meta_batch": "four"},
        {"inner.step_size": "fast"},
        {"first_order": "maybe"},
        {"regularizer.mu": True},
        {"bn_mode": 1},
        {"bn_mode": "batch"},
        {"compose.inner": "newton"},
    ],
)
def test_wrong_value_raises_config_error(values: dict):
    key = next(iter(values))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve({"method": "maml", **values})


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(KeyError, match="i-amfs"):
        method_spec("imaml")


def test_config_choices_are_what_the_code_implements():
    """benchmarks/runs/config.py spells the strategies and convolutions out (no torch import to read a
    config); they must stay the sets MetaLearner, execution and the backbone implement."""
    from benchmarks.device.convolutions import CONV_IMPLS
    from benchmarks.device.execution import GRAPHED
    from benchmarks.learner.meta_learner import STRATEGIES
    from benchmarks.runs.config import CHOICES

    assert set(CHOICES["strategy"]) == {"auto", *STRATEGIES, *GRAPHED}
    assert set(CHOICES["backbone.conv"]) == {"auto", *CONV_IMPLS}
    assert set(CHOICES["compose.inner"]) == {"", *(m.inner for m in METHODS.values())}
    assert set(CHOICES["compose.outer"]) == {"", *(m.outer for m in METHODS.values())}
    assert set(CHOICES["compose.inner"]) == {"", "gradient", "kernel", "ridge", "prototypes"}
    assert set(CHOICES["compose.outer"]) == {"", "mean", "cosine"}
