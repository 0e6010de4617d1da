"""The figures say what they show: stable file names, no panel without data, every method visible in
the legend, reduced-iteration runs marked."""

from __future__ import annotations

from benchmarks.report import commands
from benchmarks.report import figures as fig
from benchmarks.report.labels import METHOD_NAMES, REDUCED_MARK
from benchmarks.report.runs import load_runs
from support.records import make_record, write_records

CPU_TIMING = {"meta_iteration_ms_median": 70.0, "adaptation_ms_per_episode": 12.0, "train_seconds": 9.0}
CPU_TIMING_NO_MEMORY = {**CPU_TIMING, "peak_memory_mb": None}  # what the runner writes on the CPU


def _grid(tmp_path, device=("cpu", "Intel(R) Xeon(R) Processor @ 2.80GHz"), reduced=True, timing=CPU_TIMING_NO_MEMORY):
    """Every method on Omniglot 5w1s and the sinusoid, two seeds; I-AMFS and AMFS with identical curves."""
    records = []
    for dataset, setting in (("omniglot", "5w1s"), ("sinusoid", "10shot")):
        for method in METHOD_NAMES:
            for seed in (0, 1):
                salt = 1 if method in ("i-amfs", "amfs") else None
                options = {"reduced": reduced, "device": device, "timing": timing, "salt": salt}
                records.append(make_record(method, dataset, setting, seed, **options))
    results = tmp_path / "results"
    write_records(results, "quick", records)
    return results


def _figures(results):
    figures, _ = commands.build_figures(load_runs(results, "quick"))
    return {f.name: f for f in figures}


def test_figure_names_do_not_depend_on_the_device_model(tmp_path):
    xeon = _figures(_grid(tmp_path / "a", device=("cpu", "Intel(R) Xeon(R) Processor @ 2.80GHz")))
    epyc = _figures(_grid(tmp_path / "b", device=("cpu", "AMD EPYC 7763 64-Core Processor")))
    assert sorted(xeon) == sorted(epyc)
    assert "cost-cpu.png" in xeon
    assert not any("xeon" in name or "intel" in name for name in xeon)
    assert "Intel(R) Xeon(R)" in xeon["cost-cpu.png"].caption  # the model is stated, just not in the name


def test_cpu_cost_figure_has_no_empty_memory_panel(tmp_path):
    results = _grid(tmp_path)
    cost = _figures(results)["cost-cpu.png"]
    assert cost.panels == ("time per meta-iteration", "adaptation time per test episode")
    assert "peak memory: not recorded by any run on cpu" in cost.caption
    commands.report("quick", results, tmp_path / "reports")
    assert "peak memory: not recorded by any run on cpu" in (tmp_path / "reports" / "quick" / "README.md").read_text()


def test_cost_figure_with_memory_has_a_memory_panel(tmp_path):
    timing = {**CPU_TIMING, "peak_memory_mb": 900.0}
    cost = _figures(_grid(tmp_path, device=("cuda", "NVIDIA H200"), timing=timing))["cost-cuda.png"]
    assert cost.panels == ("time per meta-iteration", "adaptation time per test episode", "peak memory")
    assert "not recorded" not in cost.caption


def test_cost_figure_shows_precision_variants_in_rows_of_their_own(tmp_path):
    records = []
    for method in ("maml", "amfs"):
        records.append(make_record(method, "omniglot", "5w1s", 0))
        tf32 = make_record(method, "omniglot", "5w1s", 0, variant="tf32")
        tf32["config"]["precision"] = "tf32"
        records.append(tf32)
        records.append(make_record(method, "omniglot", "5w1s", 0, variant="meta-batch-2"))  # same precision: no row
    write_records(tmp_path / "results", "quick", records)
    caption = _figures(tmp_path / "results")["cost-cuda.png"].caption
    assert "the precision variant tf32 in rows of their own" in caption and "meta-batch-2" not in caption


def test_every_method_is_in_the_validation_legend_and_has_its_panel(tmp_path):
    """I-AMFS and AMFS share their curves here, as they nearly do in real runs: both stay visible."""
    figures = _figures(_grid(tmp_path))
    for name in ("validation-omniglot-5w1s.png", "validation-sinusoid-10shot.png"):
        figure = figures[name]
        for display in METHOD_NAMES.values():
            assert display in figure.legend, (name, display)
            assert any(panel.startswith(f"{display} (") for panel in figure.panels), (name, display)
    assert "higher is better" in figures["validation-omniglot-5w1s.png"].caption
    assert "lower is better" in figures["validation-sinusoid-10shot.png"].caption


def test_reduced_runs_are_marked_in_every_figure(tmp_path):
    reduced = _figures(_grid(tmp_path / "reduced", reduced=True))
    full = _figures(_grid(tmp_path / "full", reduced=False))
    assert sorted(reduced) == sorted(full)
    for name, figure in reduced.items():
        assert fig.REDUCED_LABEL in figure.legend, name
        assert fig.REDUCED_LABEL not in full[name].legend, name
    assert all(panel.endswith(REDUCED_MARK) for panel in reduced["validation-omniglot-5w1s.png"].panels)
    assert not any(REDUCED_MARK in panel for panel in full["validation-omniglot-5w1s.png"].panels)


def test_paired_figure_states_its_unit_and_direction(tmp_path):
    figures = _figures(_grid(tmp_path))
    assert "(pp)" in figures["paired-vs-maml-accuracy.png"].caption
    assert "> 0 favours the method" in figures["paired-vs-maml-accuracy.png"].caption
    assert "< 0 favours the method" in figures["paired-vs-maml-mse.png"].caption
    assert set(figures["paired-vs-maml-accuracy.png"].legend) >= {"I-AMFS", "O-AMFS", "AMFS"}


def test_regularizer_figure_without_reg_none_has_one_panel(tmp_path):
    records = [
        make_record("amfs", "omniglot", "5w1s", seed, variant=variant, effect=0.01 * i)
        for i, variant in enumerate(("default", "reg-mu-only"))
        for seed in (0, 1)
    ]
    write_records(tmp_path / "results", "quick", records)
    figure = _figures(tmp_path / "results")["regularizer-omniglot-5w1s.png"]
    assert figure.panels == ("Test metric, mean ± 95% CI over episodes",)


def test_regenerating_removes_only_stale_figures_of_its_own_names(tmp_path):
    results = _grid(tmp_path)
    out = tmp_path / "reports" / "quick"
    out.mkdir(parents=True)
    (out / "cost-cpu-intel-r-xeon-r-processor-2-80ghz.png").write_bytes(b"old")  # an older name of the cost figure
    (out / "diagram.png").write_bytes(b"someone else's")
    assert commands.report("quick", results, tmp_path / "reports") == 0
    assert not (out / "cost-cpu-intel-r-xeon-r-processor-2-80ghz.png").exists()
    assert (out / "diagram.png").read_bytes() == b"someone else's"
    assert (out / "cost-cpu.png").read_bytes().startswith(b"\x89PNG")
