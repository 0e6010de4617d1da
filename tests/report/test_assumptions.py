"""The assumptions catalogue and which assumptions apply to a run config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.data.datasets import dataset_info
from benchmarks.learner.registry import METHODS
from benchmarks.runs.assumptions import ASSUMPTIONS, assumptions_in_force, head_init_assumption, recorded_assumptions
from benchmarks.runs.config import CHOICES, resolve


def config(method: str, dataset: str = "omniglot", **values) -> dict:
    return resolve({"method": method, "dataset": dataset, **values})


def test_catalogue_entries_are_single_lines():
    for key, text in ASSUMPTIONS.items():
        assert key == key.lower() and " " not in key
        assert text and "\n" not in text


@pytest.mark.parametrize("head_init", CHOICES["head.init"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("dataset", ["omniglot", "mini-imagenet", "cub", "fc100", "sinusoid"])
def test_every_id_in_force_is_catalogued(method, dataset, head_init):
    if dataset_info(dataset).task not in METHODS[method].inner_loop.task_kinds:
        pytest.skip(f"{method} does not run on {dataset} (runs.config refuses it)")
    ids = assumptions_in_force(config(method, dataset, **{"head.init": head_init}))
    assert ids and set(ids) <= set(ASSUMPTIONS)
    assert ids == [k for k in ASSUMPTIONS if k in ids]  # catalogue order, no duplicates


def test_maml_on_omniglot():
    ids = set(assumptions_in_force(config("maml")))
    assert {"maml-adapt-all-parameters", "omniglot-split", "bn-transductive", "backbone-strided-spatial-mean"} <= ids
    assert not ids & {"kernel-one-solve", "cosine-m-is-t-minus-1", "regularizer-signs", "maml-first-order-detach"}


def test_amfs_defaults_carry_kernel_cosine_and_regularizer_assumptions():
    ids = set(assumptions_in_force(config("amfs", "mini-imagenet")))
    expected = {
        "kernel-one-solve",
        "kernel-sigma-median",
        "kernel-init-values",
        "cosine-m-is-t-minus-1",
        "regularizer-signs",
        "regularizer-amfs-strengths",
        "regularizer-information-definition",
        "backbone-maxpool-flatten",
    }
    assert expected <= ids
    assert "omniglot-split" not in ids


def test_ablation_variants_change_the_assumptions():
    none = set(assumptions_in_force(config("amfs", **{"regularizer.mu": 0.0, "regularizer.gamma": 0.0})))
    assert not any(key.startswith("regularizer-") for key in none)
    first_order = set(assumptions_in_force(config("amfs", first_order=True)))
    assert "kernel-first-order-detached-support" in first_order
    assert "maml-first-order-detach" in assumptions_in_force(config("fomaml"))
    inductive = set(assumptions_in_force(config("maml", bn_mode="inductive")))
    assert "bn-inductive-support-stats" in inductive and "bn-transductive" not in inductive
    minus = set(assumptions_in_force(config("amfs", **{"regularizer.mu_sign": -1.0})))
    assert "regularizer-printed-minus-sign" in minus and "regularizer-signs" not in minus
    sqrt_d = set(assumptions_in_force(config("i-amfs", **{"kernel.sigma_init": "sqrt_d"})))
    assert "kernel-sigma-sqrt-d" in sqrt_d and "kernel-sigma-median" not in sqrt_d


def test_composition_from_config_overrides_the_method():
    ids = set(assumptions_in_force(config("maml", **{"compose.inner": "kernel", "compose.outer": "cosine"})))
    assert {"kernel-one-solve", "cosine-weights-constant"} <= ids
    assert "maml-adapt-all-parameters" not in ids


def test_regression_information_term_is_zero():
    ids = set(assumptions_in_force(config("amfs", "sinusoid")))
    assert {"sinusoid-protocol", "regularizer-information-zero-regression", "kernel-regression-targets"} <= ids
    assert not ids & {"bn-transductive", "backbone-conv-no-bias", "regularizer-information-definition"}


# The lists the five methods recorded before the ids moved to the loop classes and registry rows
# (written by the earlier assumptions_in_force): committed records and reports depend on them. Since
# then one id was added on purpose: a gradient-inner-loop run names how its head was drawn.
RECORDED = json.loads((Path(__file__).parent / "assumptions_in_force.json").read_text())


def test_the_five_methods_record_the_same_ids_as_before():
    checked = 0
    for group in RECORDED["groups"]:
        for key in group["configs"]:
            method, dataset, variant = key.split("|")
            config = resolve({"method": method, "dataset": dataset, **RECORDED["variants"][variant]})
            expected = set(group["in_force"])
            if "maml-adapt-all-parameters" in expected:
                expected.add(head_init_assumption(config))
            assert assumptions_in_force(config) == [k for k in ASSUMPTIONS if k in expected], key
            checked += 1
    assert checked == 5 * 3 * len(RECORDED["variants"])


def test_ridge_control_records_its_own_ids_and_no_kernel_ones():
    ids = assumptions_in_force(config("ridge"))
    assert {"ridge-one-hot", "ridge-init-values", "ridge-cholesky-jitter"} <= set(ids)
    assert not [key for key in ids if key.startswith(("kernel-", "maml-", "cosine-", "regularizer-", "prototypes-"))]
    regression = set(assumptions_in_force(config("ridge", "sinusoid")))
    assert "ridge-regression-targets" in regression and "ridge-one-hot" not in regression
    assert "ridge-first-order-detached-support" in assumptions_in_force(config("ridge", first_order=True))
    assert "ridge-first-order-detached-support" not in ids


def test_prototype_control_records_its_own_ids_and_no_kernel_ones():
    ids = assumptions_in_force(config("protonet", "mini-imagenet"))
    assert "prototypes-squared-euclidean" in ids and "backbone-maxpool-flatten" in ids
    assert not [key for key in ids if key.startswith(("kernel-", "maml-", "cosine-", "regularizer-", "ridge-"))]
    first_order = assumptions_in_force(config("protonet", first_order=True))
    assert "prototypes-first-order-detached-support" in first_order
    with_cosine = set(assumptions_in_force(config("protonet", **{"compose.outer": "cosine"})))
    assert {"prototypes-squared-euclidean", "cosine-m-is-t-minus-1"} <= with_cosine


@pytest.mark.parametrize(
    ("dataset", "head_id"),
    [
        ("omniglot", "head-init-reference-omniglot"),
        ("mini-imagenet", "head-init-reference-mini-imagenet"),
        ("cub", "head-init-reference-mini-imagenet"),
        ("fc100", "head-init-reference-mini-imagenet"),
        ("sinusoid", "head-init-reference-sinusoid"),
    ],
)
def test_gradient_inner_loop_runs_record_their_head_initialisation(dataset, head_id):
    for method in ("maml", "fomaml", "o-amfs"):
        ids = assumptions_in_force(config(method, dataset))
        assert [i for i in ids if i.startswith("head-init-")] == [head_id]
        for choice in ("xavier", "zero"):
            ids = assumptions_in_force(config(method, dataset, **{"head.init": choice}))
            assert [i for i in ids if i.startswith("head-init-")] == [f"head-init-{choice}"]
    for method in ("i-amfs", "amfs"):  # no head: no head-init id, whatever the setting
        assert not any(i.startswith("head-init-") for i in assumptions_in_force(config(method, dataset)))


def test_head_init_ids_name_their_source():
    for key, text in ASSUMPTIONS.items():
        if key.startswith("head-init-") and key != "head-init-zero":
            assert "cbfinn/maml, maml.py" in text, key


def test_a_record_made_before_head_init_existed_used_the_xavier_head():
    """Its config lacks head.init and its list has no head-init id: the id comes from the config, as the
    default then (xavier); a record that lists one, or has no gradient inner loop, is taken as it is."""
    old = ["paper-via-summary", "maml-adapt-all-parameters"]
    assert recorded_assumptions(old, {"method": "maml", "dataset": "omniglot"}) == ([*old, "head-init-xavier"], True)
    new = ["maml-adapt-all-parameters", "head-init-reference-omniglot"]
    assert recorded_assumptions(new, {"dataset": "omniglot", "head.init": "reference"}) == (new, False)
    kernel = ["kernel-one-solve"]
    assert recorded_assumptions(kernel, {"method": "i-amfs", "dataset": "omniglot"}) == (kernel, False)
