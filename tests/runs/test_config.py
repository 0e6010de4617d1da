"""Settings are refused, with the reason, before any run starts: non-finite numbers, values out of
range, wrong signs, and an unknown method named in a grid file."""

from __future__ import annotations

import pytest

from benchmarks.cli import main
from benchmarks.runs.config import ConfigError, parse_assignments, resolve
from support.grids import write_grid


@pytest.mark.parametrize(
    "assignment, reason",
    [
        ("inner.step_size=nan", "inner.step_size must be a finite number, got nan"),
        ("inner.step_size=inf", "inner.step_size must be a finite number, got inf"),
        ("inner.step_size=0", "inner.step_size must be > 0, got 0.0"),
        ("inner.step_size=-0.4", "inner.step_size must be > 0, got -0.4"),
        ("meta_lr=nan", "meta_lr must be a finite number"),
        ("meta_lr=-inf", "meta_lr must be a finite number"),
        ("meta_lr=0", "meta_lr must be > 0"),
        ("kernel.lambda_init=0", "kernel.lambda_init must be > 0"),
        ("kernel.lambda_init=-1", "kernel.lambda_init must be > 0"),
        ("kernel.scale_init=0", "kernel.scale_init must be > 0"),
        ("regularizer.mu=-0.1", "regularizer.mu must be >= 0"),
        ("regularizer.gamma=nan", "regularizer.gamma must be a finite number"),
        ("regularizer.mu_sign=0.5", "regularizer.mu_sign must be +1 or -1, got 0.5"),
        ("regularizer.gamma_sign=0", "regularizer.gamma_sign must be +1 or -1"),
        ("query_train=0", "query_train must be >= 1, got 0"),
        ("query_test=-3", "query_test must be >= 1"),
        ("inner.steps_test=-1", "inner.steps_test must be >= 0"),
        ("kernel.max_jitter_retries=-1", "kernel.max_jitter_retries must be >= 0"),
        ("backbone.filters=0", "backbone.filters must be >= 1"),
    ],
)
def test_bad_numeric_settings_are_refused_with_the_reason(assignment, reason):
    with pytest.raises(ConfigError, match=reason.replace(".", r"\.").replace("+", r"\+")):
        resolve({"method": "amfs", **parse_assignments([assignment])})


def test_a_negative_seed_in_a_grid_is_refused():
    """seed cannot come from --set (a grid lists its seeds), so its range is checked where grids give it."""
    with pytest.raises(ConfigError, match="seed must be >= 0"):
        resolve({"method": "amfs", "seed": -1})


def test_the_defaults_and_every_method_pass():
    for method in ("maml", "fomaml", "i-amfs", "o-amfs", "amfs"):
        resolve({"method": method, "regularizer.mu_sign": -1.0})


def test_a_bad_setting_stops_the_grid_before_any_run(tmp_path, capsys):
    grid = write_grid(tmp_path, extra='\n[[variant]]\nname = "bad"\nset = { "inner.step_size" = nan }\n')
    assert main(["run", "--grid", str(grid), "--results", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "inner.step_size must be a finite number, got nan" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "methods, where",
    [('"maml", "imaml"', "methods: unknown method 'imaml'"), ('"maml", 3', "methods must be a list of method names")],
)
def test_an_unknown_method_in_a_grid_file_is_refused_with_the_reason(tmp_path, capsys, methods, where):
    grid = write_grid(tmp_path)
    grid.write_text(grid.read_text().replace('methods = ["maml", "i-amfs"]', f"methods = [{methods}]"))
    assert main(["run", "--grid", str(grid), "--results", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert where in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_an_unknown_method_of_a_variant_and_bad_seeds_are_refused(tmp_path, capsys):
    extra = '\n[[variant]]\nname = "v"\nmethods = ["amfss"]\nset = { "meta_lr" = 0.01 }\n'
    grid = write_grid(tmp_path, extra=extra)
    assert main(["list", "--grid", str(grid), "--results", str(tmp_path / "r")]) == 2
    assert "[[variant]] #1: methods: unknown method 'amfss'" in capsys.readouterr().err
    grid.write_text(write_grid(tmp_path, name="seeds").read_text().replace("seeds = [0]", "seeds = [-1]"))
    assert main(["list", "--grid", str(grid), "--results", str(tmp_path / "r")]) == 2
    assert "seeds must be a non-empty list of integers >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../quick", "/etc/passwd", ".hidden", "a/b"])
def test_a_grid_name_that_is_not_plain_is_refused(tmp_path, capsys, name):
    assert main(["list", "--grid", name, "--results", str(tmp_path / "r")]) == 2
    assert "not a plain name" in capsys.readouterr().err
