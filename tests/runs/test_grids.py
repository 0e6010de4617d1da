"""Grid expansion: named grids, layering of settings, and no run computed twice."""

from __future__ import annotations

import pytest

from benchmarks.runs.config import ConfigError
from benchmarks.runs.grids import load_grid


def test_named_grids_expand_with_the_protocol_and_reduced_flags():
    quick = load_grid("quick")
    assert len(quick.runs) == 20 and all(r.config["reduced"] for r in quick.runs)
    omniglot = [r for r in quick.runs if r.dataset == "omniglot"]
    assert {r.config["meta_batch"] for r in omniglot} == {4}  # the grid overrides Finn's 32
    paper = load_grid("paper")
    mini = next(r for r in paper.runs if r.key == "mini-imagenet/5w1s/maml/default/seed0")
    assert (mini.config["inner.steps_train"], mini.config["inner.step_size"], mini.config["meta_batch"]) == (5, 0.01, 4)
    assert not mini.config["reduced"] and mini.config["iterations"] == 60000


def test_a_variant_equal_to_another_run_is_not_run_twice():
    runs = load_grid("ablations").runs
    keys = {r.key for r in runs}
    assert "mini-imagenet/5w1s/maml/meta-batch-4/seed0" not in keys  # the protocol's meta-batch is 4
    assert "mini-imagenet/5w1s/maml/meta-batch-8/seed0" in keys
    assert "omniglot/5w1s/amfs/meta-batch-32/seed0" not in keys  # Omniglot 5-way uses 32
    assert "omniglot/5w1s/amfs/meta-batch-4/seed0" in keys
    configs = [tuple(sorted(r.config.items())) for r in runs]
    assert len(configs) == len(set(configs))


def test_command_line_overrides_apply_to_every_run_and_only_filters():
    grid = load_grid("quick", {"iterations": 3}, only="omniglot/*/amfs/*")
    assert [r.key for r in grid.runs] == ["omniglot/5w1s/amfs/default/seed0", "omniglot/5w1s/amfs/default/seed1"]
    assert all(r.config["iterations"] == 3 for r in grid.runs)


def test_unknown_grid_names_the_valid_ones():
    with pytest.raises(
        ConfigError,
        match="named grids: ablations, evidence-cub-mini, evidence-omniglot, omniglot-bf16, omniglot-short, "
        "omniglot-tf32, paper, quick, smoke",
    ):
        load_grid("papers")


def test_a_classification_only_method_on_a_regression_setting_is_refused_before_any_run(tmp_path, capsys):
    """ProtoNet is defined for classification only: a grid that pairs it with the sinusoid fails to load,
    naming the file, the run and the fix, and `run` stops before any run starts."""
    from benchmarks.cli import main

    grid = tmp_path / "mixed.toml"
    settings = '[[setting]]\ndataset = "omniglot"\n[[setting]]\ndataset = "sinusoid"\n'
    grid.write_text('methods = ["maml", "protonet"]\n' + settings)
    with pytest.raises(ConfigError, match=r"mixed\.toml \(sinusoid, protonet, default\): method 'protonet' supports"):
        load_grid(str(grid))
    results = tmp_path / "results"
    assert main(["run", "--grid", str(grid), "--results", str(results)]) == 2
    assert "use a classification dataset" in capsys.readouterr().err
    assert not results.exists()


def test_the_controls_run_in_every_paper_setting():
    """The ridge head and ProtoNet run the default variant of every paper setting, beside I-AMFS."""
    paper = load_grid("paper")
    settings = {(r.dataset, r.setting) for r in paper.runs}
    for method in ("ridge", "protonet", "i-amfs"):
        assert {(r.dataset, r.setting) for r in paper.runs if r.method == method} == settings
