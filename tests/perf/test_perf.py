"""`python -m benchmarks perf` on tiny settings: end to end on the CPU, the README regenerated from
the JSON, the numerics checks between strategies and against learn2learn, and the projections."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from benchmarks.cli import main
from benchmarks.device.execution import backend_scope
from benchmarks.learner.registry import METHODS
from benchmarks.perf import command as perf
from benchmarks.perf import numerics as perf_numerics
from benchmarks.perf import ours as perf_ours
from benchmarks.perf import strategies as perf_strategies
from benchmarks.perf.numerics import STRATEGY_RTOL, agreement_verdict
from benchmarks.perf.ours import gradient_agreement
from benchmarks.perf.peers import PEER_RTOL, cross_check, import_learn2learn
from benchmarks.perf.projection import project_run
from benchmarks.perf.settings import CPU_META_BATCH, PerfSetting, default_settings, parse_meta_batch, synthetic_batch
from benchmarks.perf.timing import PeakMemory
from benchmarks.runs.grids import load_grid
from support.perf import tiny_setting

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny shapes run fastest, and least disturbed by other work on the machine, on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def measured() -> dict:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return perf.measure([tiny_setting()], device=CPU, repeats=2, warmup=0, progress=lambda _: None)
    finally:
        torch.set_num_threads(before)


def test_measure_times_every_method_and_strategy_and_writes_the_report(measured: dict, tmp_path: Path):
    ours = [r for r in measured["rows"] if r["implementation"] == "amfs-bench"]
    assert {(r["method"], r["strategy"]) for r in ours} == {
        (m, s) for m in METHODS for s in ("loop", "vmap", "batched", "batched+nhwc-all")
    }
    for r in ours:
        assert r["ms"]["median"] > 0 and r["adapt_ms"]["median"] > 0
        assert len(r["ms_samples"]) == 2
        assert r["grad_rel_err_vs_loop"] < STRATEGY_RTOL and r["numerics_ok"], r
        assert r["tensor_mib"] > 0
    readme = perf.write_reports(measured, tmp_path / "perf").read_text()
    assert "| tensor memory MiB |" in readme and f"- tensor memory: {perf.TENSOR_MEMORY_MEASURE}." in readme
    for method in METHODS:
        assert f"| {method} | loop |" in readme and f"| {method} | vmap |" in readme
    assert measured["environment"]["device_name"] in readme
    assert f"heap: {measured['environment']['heap']}" in readme  # the heap policy the rows ran under
    assert (tmp_path / "perf" / "ms_per_iteration.png").stat().st_size > 0
    assert "CPU projections" in readme and "### Grid `paper`" in readme and "### Grid `ablations`" in readme


def test_tensor_memory_is_counted_at_the_protocols_meta_batch_where_the_timed_one_is_reduced(measured: dict):
    counted = measured["protocol_memory"]
    ours = {(r["method"], r["strategy"]): r for r in counted if r["implementation"] == "amfs-bench"}
    assert set(ours) == {(m, s) for m in METHODS for s in ("loop", "vmap", "batched", "batched+nhwc-all")}
    assert all(r["meta_batch"] == 32 and r["tensor_mib"] > 0 for r in counted)  # Omniglot's protocol, not 2
    # the loop frees each task's graph before the next; the batched step holds all 32 at once
    assert ours[("maml", "batched")]["tensor_mib"] > 3 * ours[("maml", "loop")]["tensor_mib"]
    peers = {r["method"] for r in counted if r["implementation"] == "learn2learn"}
    assert peers == (set() if import_learn2learn()[0] is None else {"maml", "fomaml"})
    readme = perf.render_readme(measured)
    assert "## Tensor memory at the protocol's meta-batch" in readme
    assert f"| tiny | 32 | amfs-bench | maml | loop | {ours[('maml', 'loop')]['tensor_mib']:.1f} |" in readme


def test_readme_regenerates_identically_from_the_json(measured: dict, tmp_path: Path):
    readme = perf.write_reports(measured, tmp_path / "perf")
    first = readme.read_text()
    readme.unlink()
    assert main(["perf", "--from-json", str(tmp_path / "perf" / "perf.json")]) == 0
    assert readme.read_text() == first


def test_every_table_row_names_the_device(measured: dict):
    text = perf.render_readme(measured)
    device = measured["environment"]["device_name"]
    table_rows = [line for line in text.splitlines() if line.startswith("| ") and "tiny" in line.split("|")[2]]
    assert table_rows and all(line.startswith(f"| {device} |") for line in table_rows)


def test_learn2learn_rows_and_cross_check(measured: dict):
    l2l, status = import_learn2learn()
    peers = [r for r in measured["rows"] if r["implementation"] == "learn2learn"]
    assert {r["method"] for r in peers} == {"maml", "fomaml"}
    if l2l is None:
        assert all(r["status"] == status and r["ms"] is None for r in peers)
    else:
        assert all(r["ms"]["median"] > 0 and r["tensor_mib"] > 0 for r in peers)
        assert {c["method"] for c in measured["cross_checks"]} == {"maml", "fomaml"}
        assert {p["method"] for p in measured["paired"]} == {"maml", "fomaml"}
        for p in measured["paired"]:
            assert len(p["ours_samples"]) == len(p["peer_samples"]) == 2
            ratios = sorted(t / o for t, o in zip(p["peer_samples"], p["ours_samples"], strict=True))
            assert p["speedup"]["median"] == pytest.approx(sum(ratios) / 2)
        assert "## Paired comparison with learn2learn" in perf.render_readme(measured)


def test_missing_learn2learn_gives_rows_without_numbers(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(perf, "import_learn2learn", lambda: (None, "not installed (ModuleNotFoundError)"))
    data = perf.measure([tiny_setting()], ["i-amfs"], CPU, 1, 0, strategies=["loop"], progress=lambda _: None)
    peers = [r for r in data["rows"] if r["implementation"] == "learn2learn"]
    assert len(peers) == 2 and all(r["ms"] is None for r in peers) and not data["cross_checks"]
    readme = perf.write_reports(data, tmp_path / "perf").read_text()
    assert readme.count("not installed (ModuleNotFoundError)") >= 2
    assert "| vs l2l MAML |" in readme and "n/a" in readme


def test_our_second_order_meta_gradient_matches_learn2learn():
    """Two inner steps, so that the second-order terms matter; the check must also tell the orders
    apart, or agreement would prove nothing."""
    l2l, status = import_learn2learn()
    if l2l is None:
        pytest.skip(f"learn2learn {status}")
    setting = tiny_setting(steps=2)
    batch = synthetic_batch(setting, 2, 2, seed=3, device=CPU)
    checks = {c["method"]: c for c in cross_check(l2l, setting, batch, CPU, seed=3)}
    assert checks["maml"]["rel_err"] < PEER_RTOL, checks
    assert checks["fomaml"]["rel_err"] < PEER_RTOL, checks
    assert checks["maml"]["vs_other_order"] > 100 * PEER_RTOL, checks
    assert checks["fomaml"]["vs_other_order"] > 100 * PEER_RTOL, checks


def test_cpu_peak_memory_sees_a_large_allocation():
    with PeakMemory(CPU) as memory:
        block = torch.ones(16 * 2**20)  # 64 MiB, written so the pages are resident
        del block
    if memory.mib is None:
        pytest.skip("no /proc/self/clear_refs here: CPU memory is reported as n/a")
    assert 60 <= memory.mib < 1024


def _fake_measurement(meta_batch: int, ms: float, adapt_ms: float) -> dict:
    """One measured Omniglot 5-way 1-shot MAML row on a CPU, of the CPU's auto execution."""
    setting = PerfSetting(
        "omniglot-5w1s", {"dataset": "omniglot", "n_way": 5, "k_shot": 1, "meta_batch": meta_batch}, 1, 28
    )
    row = {
        "setting": setting.key,
        "implementation": "amfs-bench",
        "method": "maml",
        "strategy": "batched+nhwc-all",
        "ms": {"median": ms, "iqr_fraction": 0.0},
        "adapt_ms": {"median": adapt_ms, "iqr_fraction": 0.0},
    }
    return {"environment": {"device": "cpu"}, "settings": [setting.describe()], "rows": [row]}


def test_projection_exact_match_and_estimates():
    data = _fake_measurement(meta_batch=32, ms=100.0, adapt_ms=2.0)
    runs = {r.key: r for r in load_grid("paper").runs}
    exact = project_run(runs["omniglot/5w1s/maml/default/seed0"], data)
    c = runs["omniglot/5w1s/maml/default/seed0"].config
    episodes = c["test_episodes"] + c["iterations"] // c["val_every"] * c["val_episodes"]
    assert exact.reasons == []
    assert exact.train_hours == pytest.approx(c["iterations"] * 100.0 / 3.6e6)
    assert exact.eval_hours == pytest.approx(episodes * 2.0 / 3.6e6)

    twenty_way = project_run(runs["omniglot/20w1s/maml/default/seed0"], data)
    assert twenty_way.train_hours == pytest.approx(60000 * 100.0 * 16 / 32 / 3.6e6)  # meta-batch 16 of 32
    assert any("timed as omniglot-5w1s" in r for r in twenty_way.reasons)
    assert any("meta-batch 16 vs 32" in r for r in twenty_way.reasons)
    assert project_run(runs["omniglot/5w1s/fomaml/default/seed0"], data) is None  # no fomaml row measured


def test_projection_scales_a_reduced_cpu_meta_batch():
    data = _fake_measurement(meta_batch=4, ms=100.0, adapt_ms=0.0)
    run = next(r for r in load_grid("paper").runs if r.key == "omniglot/5w1s/maml/default/seed0")
    projected = project_run(run, data)
    assert projected.train_hours == pytest.approx(60000 * 100.0 * 8 / 3.6e6)
    assert projected.estimate


def test_readme_flags_a_strategy_that_disagrees(measured: dict):
    """Off in float32 only: float32 rounding, settled by the float64 check; off in float64: another
    function; off in float32 with no float64 check: flagged."""
    data = copy.deepcopy(measured)
    row = next(r for r in data["rows"] if r["strategy"] == "vmap" and r["method"] == "maml")
    row["grad_rel_err_vs_loop"] = 1e-2
    assert "| ok (same in float64) |" in perf.render_readme(data)
    row["float64_rel_err_vs_loop"] = 1e-6
    assert "| FLAGGED (differs in float64) |" in perf.render_readme(data)
    row["float64_rel_err_vs_loop"] = None
    assert "| FLAGGED |" in perf.render_readme(data)
    table_lines = [x for x in perf.render_readme(measured).splitlines() if x.startswith("|")]
    assert not any("FLAGGED" in x or "same in float64" in x for x in table_lines)


def test_numerics_verdict_combines_the_float32_and_float64_checks():
    verdict = perf_ours.numerics_verdict
    same, other = 0.1 * perf_numerics.SAME_FUNCTION_RTOL, 10 * perf_numerics.SAME_FUNCTION_RTOL
    assert verdict(True, None, "vmap") is True and verdict(True, same, "vmap") is True
    assert verdict(True, other, "vmap") is False  # float32 agreement cannot hide another function
    assert verdict(False, same, "vmap") is True and verdict(None, same, "vmap") is True  # rounding only
    assert verdict(False, None, "vmap") is False and verdict(None, None, "vmap") is None
    assert verdict(False, same, "graph+tf32") is False  # TF32's accuracy statement stands


def test_every_row_is_the_loop_function_in_float64(measured: dict):
    assert measured["options"]["same_function_rtol"] == perf_numerics.SAME_FUNCTION_RTOL
    for r in measured["rows"]:
        if r["implementation"] == "amfs-bench":
            if r["strategy"] == "loop":
                assert r["float64_rel_err_vs_loop"] is None
            else:
                assert r["float64_rel_err_vs_loop"] < perf_numerics.SAME_FUNCTION_RTOL, r


def test_the_float64_check_catches_an_error_float32_cannot_see(monkeypatch):
    """A batched strategy whose meta-gradient is 1e-6 too large passes the float32 check (tolerance
    1e-4) and fails the float64 one."""
    prepare = perf_ours.prepare_run

    def skewed(setting, method, strategy, *args, **kwargs):
        run = prepare(setting, method, strategy, *args, **kwargs)
        if strategy.startswith("batched"):
            meta_gradients = run.learner.meta_gradients

            def wrong(params, batch):
                result = meta_gradients(params, batch)
                result.gradients = {k: g * (1 + 1e-6) for k, g in result.gradients.items()}
                return result

            run.learner.meta_gradients = wrong
        return run

    monkeypatch.setattr(perf_ours, "prepare_run", skewed)
    data = perf.measure([tiny_setting()], ["maml"], CPU, 1, 0, peers=[], progress=lambda _: None)
    rows = {r["strategy"]: r for r in data["rows"]}
    assert rows["vmap"]["numerics_ok"] is True
    batched = rows["batched"]
    assert batched["float32_ok"] is True and batched["numerics_ok"] is False
    assert batched["float64_rel_err_vs_loop"] == pytest.approx(1e-6, rel=1e-3)
    assert "| FLAGGED (differs in float64) |" in perf.render_readme(data)


def test_a_graph_row_is_checked_in_float64_by_the_eager_strategy_it_replays():
    assert perf_strategies.eager_strategy("graph-batched+nhwc") == "batched+nhwc"
    assert perf_strategies.eager_strategy("graph+tf32") == "vmap+tf32"
    assert perf_strategies.eager_strategy("batched+nhwc-all") == "batched+nhwc-all"


def test_tolerance_follows_the_float32_floor_and_says_when_it_proves_little():
    exact = torch.tensor([1.0, 0.0])
    reference = torch.tensor([1.0, 2e-3])  # float32 floor 2e-3: tolerance 2e-2
    close = gradient_agreement(torch.tensor([1.0, 1e-2]), reference, exact, 1e-4)
    assert close["tolerance"] == pytest.approx(2e-2) and close["ok"] is True
    assert gradient_agreement(torch.tensor([1.0, 0.5]), reference, exact, 1e-4)["ok"] is False
    assert gradient_agreement(reference, reference, None, 1e-4)["tolerance"] == 1e-4
    assert agreement_verdict(0.01, 0.05, 0.5) is None  # float32 itself off by 5%: inconclusive
    assert agreement_verdict(0.0, 0.05, 0.5) is True  # unless bit for bit the same result
    assert agreement_verdict(0.6, 0.05, 0.5) is False


def test_a_measured_row_frees_its_parameters(monkeypatch):
    """torch.func meta-gradients stored in .grad form a reference cycle with the parameters; the row
    must break it, or each row's memory stays allocated into the next (and the GPU run runs out)."""
    import gc
    import weakref

    from benchmarks.perf import ours as perf_ours

    alive: list[weakref.ref] = []
    prepare = perf_ours.prepare_run

    def spy(*args, **kwargs):
        run = prepare(*args, **kwargs)
        alive.append(weakref.ref(run.params["head.weight"]))
        return run

    monkeypatch.setattr(perf_ours, "prepare_run", spy)
    setting = tiny_setting()
    batch = synthetic_batch(setting, 2, 2, seed=0, device=CPU)
    task = synthetic_batch(setting, 1, 2, seed=1, device=CPU)
    for strategy in ("loop", "vmap", "batched"):
        perf_ours.measure_ours(setting, "maml", strategy, batch, task, CPU, 1, 0)
    gc.collect()
    assert len(alive) == 3 and all(ref() is None for ref in alive)


def test_strategy_modifiers_are_parsed_and_checked_per_device():
    assert perf_strategies.parse_strategy("graph+unfold+tf32") == (
        "graph",
        {"backbone.conv": "unfold", "precision": "tf32"},
    )
    assert perf_strategies.parse_strategy("loop") == ("loop", {})
    for bad in ("vmap+fp16", "vmap+tf32+tf32"):
        with pytest.raises(ValueError, match="modifiers"):
            perf_strategies.parse_strategy(bad)
    perf_strategies.check_strategy("vmap+shifted", CPU)
    for cuda_only in ("graph", "vmap+tf32", "loop+bench"):
        with pytest.raises(ValueError, match=r"not available on cpu|needs a CUDA device"):
            perf_strategies.check_strategy(cuda_only, CPU)
    assert (
        perf_strategies.strategy_rtol("graph+tf32")
        == perf_numerics.TF32_RTOL
        > perf_strategies.strategy_rtol("graph")
        == STRATEGY_RTOL
    )
    assert main(["perf", "--device", "cpu", "--strategies", "vmap+tf32"]) == 2
    # bfloat16 runs on the CPU too (slowly without bfloat16 instructions), with its own tolerance
    perf_strategies.check_strategy("batched+nhwc-all+bf16", CPU)
    assert perf_strategies.parse_strategy("batched+bf16") == ("batched", {"precision": "bf16"})
    assert perf_strategies.strategy_rtol("batched+bf16") == perf_numerics.BF16_RTOL > perf_numerics.TF32_RTOL


def test_modified_strategies_are_checked_against_an_untimed_loop_reference():
    """Without 'loop' among the timed strategies, every row is still compared with the loop
    meta-gradient; a convolution modifier changes the row's execution and nothing else."""
    data = perf.measure(
        [tiny_setting(steps=2)],
        ["maml"],
        CPU,
        1,
        0,
        peers=[],
        strategies=["vmap", "vmap+shifted", "vmap+unfold"],
        progress=lambda _: None,
    )
    rows = {r["strategy"]: r for r in data["rows"]}
    assert set(rows) == {"vmap", "vmap+shifted", "vmap+unfold"}
    assert [rows[s]["execution"]["conv_impl"] for s in ("vmap", "vmap+shifted", "vmap+unfold")] == [
        "cudnn",
        "shifted",
        "unfold",
    ]
    for row in rows.values():
        assert row["numerics_ok"] is True and row["grad_rel_err_vs_loop"] < STRATEGY_RTOL
    assert data["options"]["tf32_rtol"] == perf_numerics.TF32_RTOL


def test_a_bf16_row_runs_its_backbone_in_bfloat16_and_keeps_its_float32_verdict():
    """The row is named by its precision, its float32 check uses the bf16 tolerance and stands, and
    its float64 check finds the loop's function (autocast leaves float64 alone)."""
    data = perf.measure(
        [tiny_setting()], ["i-amfs"], CPU, 1, 0, peers=[], strategies=["loop", "batched+bf16"], progress=lambda _: None
    )
    row = next(r for r in data["rows"] if r["strategy"] == "batched+bf16")
    assert row["execution"]["precision"] == "bf16" and row["tolerance"] == perf_numerics.BF16_RTOL
    assert row["grad_rel_err_vs_loop"] > 0  # computed in bfloat16: not the float32 result
    assert row["float64_rel_err_vs_loop"] < perf_numerics.SAME_FUNCTION_RTOL
    assert row["numerics_ok"] == (row["grad_rel_err_vs_loop"] <= perf_numerics.BF16_RTOL)
    assert "`+bf16` (the backbone in bfloat16 under autocast" in perf.render_readme(data)


def test_a_tf32_row_is_judged_by_the_tf32_tolerance():
    row = {"strategy": "graph+tf32", **perf_numerics.empty_numerics()}
    exact = torch.ones(100, dtype=torch.float64)
    loop = exact.clone()
    perf_ours.add_numerics(row, exact * (1 + 0.5 * perf_numerics.TF32_RTOL), loop, exact)
    assert row["numerics_ok"] is True and row["tolerance"] == perf_numerics.TF32_RTOL
    perf_ours.add_numerics(row, exact * (1 + 2 * perf_numerics.TF32_RTOL), loop, exact)
    assert row["numerics_ok"] is False
    plain = {"strategy": "graph", **perf_numerics.empty_numerics()}
    perf_ours.add_numerics(plain, exact * (1 + 0.5 * perf_numerics.TF32_RTOL), loop, exact)
    assert plain["numerics_ok"] is False


def test_precision_and_autotuner_scopes_restore_the_flags():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark
    with backend_scope("tf32", cudnn_benchmark=True):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.benchmark
    with pytest.raises(RuntimeError), backend_scope("fp32"):
        assert not torch.backends.cudnn.allow_tf32
        raise RuntimeError("a failing row")
    after = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark
    assert after == saved


def test_the_paired_comparison_skips_flagged_tf32_and_slow_rows(monkeypatch):
    """learn2learn is compared with each of our strategies that computes the same thing in full float32
    and is within PAIR_CANDIDATE_FACTOR of the fastest of them, fastest row first."""
    chosen = []

    def fake_pairs(l2l, setting, method, strategies, *args):
        chosen.extend(strategies)
        return []

    monkeypatch.setattr(perf, "paired_comparisons", fake_pairs)

    def row(strategy: str, ms: float, ok: bool | None) -> dict:
        return {
            "setting": "tiny",
            "implementation": "amfs-bench",
            "method": "maml",
            "strategy": strategy,
            "ms": {"median": ms},
            "numerics_ok": ok,
        }

    slow = 3.0 * perf.PAIR_CANDIDATE_FACTOR + 0.5
    rows = [
        row("vmap+tf32", 1.0, True),
        row("vmap+unfold", 2.0, False),
        row("loop", 4.0, None),
        row("vmap", 3.0, True),
        row("batched", slow, True),
    ]
    perf._paired(None, tiny_setting(), "maml", rows, None, CPU, 1, 0, 0, lambda _: None)
    assert chosen == ["vmap", "loop"]


def test_paired_comparisons_alternate_each_strategy_with_learn2learn(monkeypatch):
    """Every round times each strategy followed by learn2learn; warm-up rounds are not kept; each
    strategy's speed-up is the median of its own pairs."""
    import benchmarks.perf.peers as perf_peers

    calls: list[str] = []
    clock = iter(range(1, 1000))

    class FakeRun:
        def __init__(self, strategy: str):
            self.params: dict = {}
            self.step = lambda: calls.append(strategy)

    monkeypatch.setattr(perf_peers, "peer_step", lambda *args: ((lambda: calls.append("l2l")), None, None))
    monkeypatch.setattr(perf_peers, "prepare_run", lambda setting, method, strategy, *args, **kw: FakeRun(strategy))

    def fake_time_calls(fn, device, repeats, warmup):
        fn()
        return [float(next(clock))]

    monkeypatch.setattr(perf_peers, "time_calls", fake_time_calls)
    pairs = perf_peers.paired_comparisons(None, tiny_setting(), "maml", ["a", "b"], None, CPU, repeats=2, warmup=1)
    assert calls == ["a", "l2l", "b", "l2l"] * 3
    assert [p["strategy"] for p in pairs] == ["a", "b"]
    # the clock ticks once per call: round 1 is warm-up (1-4), then a=5, l2l=6, b=7, l2l=8, a=9, ...
    assert pairs[0]["ours_samples"] == [5.0, 9.0] and pairs[0]["peer_samples"] == [6.0, 10.0]
    assert pairs[1]["ours_samples"] == [7.0, 11.0] and pairs[1]["peer_samples"] == [8.0, 12.0]
    assert pairs[1]["speedup"]["median"] == pytest.approx((8 / 7 + 12 / 11) / 2)


def _pair(strategy: str, speedup: float, ratios: list[float]) -> dict:
    """A paired comparison as perf stores it: ours 2 ms each round, learn2learn 2 ms x each ratio."""
    ms = {"median": 1.0}
    return {
        "setting": "tiny",
        "method": "maml",
        "strategy": strategy,
        "ours_ms": ms,
        "peer_ms": ms,
        "speedup": {"median": speedup, "iqr_fraction": 0.1},
        "ours_samples": [2.0] * len(ratios),
        "peer_samples": [2.0 * r for r in ratios],
    }


def test_the_paired_table_puts_the_fastest_in_pairs_first_and_in_bold():
    from benchmarks.perf.report import _paired_table

    nine = [1.0] * 9
    data = {"settings": [{"key": "tiny"}], "paired": [_pair("loop", 0.9, nine), _pair("batched", 1.4, nine)]}
    body = _paired_table(data, "cpu")[2:]
    assert "| batched |" in body[0] and "**1.40x**" in body[0]
    assert "| loop |" in body[1] and "**" not in body[1]
    alone = _paired_table({**data, "paired": data["paired"][:1]}, "cpu")[2:]
    assert "**" not in alone[0]  # nothing to single out


def test_the_paired_table_gives_the_interval_of_the_median_speedup():
    """Nine pairs: the 2nd and 8th smallest per-pair ratios (96.1% coverage); five pairs: none."""
    from benchmarks.perf.report import _paired_table

    ratios = [1.5, 0.9, 1.3, 1.1, 1.8, 1.0, 1.2, 1.4, 1.6]  # shuffled 0.9 .. 1.8
    data = {"settings": [{"key": "tiny"}], "paired": [_pair("batched", 1.3, ratios)]}
    assert "| 1.30x | 1.00-1.60x |" in _paired_table(data, "cpu")[2]
    data["paired"] = [_pair("batched", 1.3, ratios[:5])]
    assert "| 1.30x | - |" in _paired_table(data, "cpu")[2]


def test_auto_execution_follows_the_measured_defaults_and_names_its_perf_row():
    """auto on CUDA: the grouped NHWC network for gradient inner loops, vmap for the kernel one, both
    in a CUDA graph; on the CPU the grouped network with its large passes in NHWC. The projection looks
    up the perf row of exactly that execution."""
    from benchmarks.runs.build import execution_for as resolve_execution
    from benchmarks.runs.config import resolve

    cuda = torch.device("cuda")
    expected = {
        ("maml", cuda): "graph-batched+nhwc",
        ("o-amfs", cuda): "graph-batched+nhwc",
        ("i-amfs", cuda): "graph",
        ("amfs", cuda): "graph",
        ("maml", CPU): "batched+nhwc-all",
        ("amfs", CPU): "batched+nhwc-all",
    }
    for (method, device), name in expected.items():
        execution, notes = resolve_execution(resolve({"method": method, "dataset": "omniglot"}), device)
        assert perf_strategies.execution_strategy(execution) == name and not notes
    explicit = resolve({"method": "amfs", "dataset": "omniglot", "strategy": "graph-batched", "precision": "tf32"})
    assert perf_strategies.execution_strategy(resolve_execution(explicit, cuda)[0]) == "graph-batched+nhwc+tf32"
    unfold = resolve({"method": "maml", "dataset": "omniglot", "strategy": "vmap", "backbone.conv": "unfold"})
    assert perf_strategies.execution_strategy(resolve_execution(unfold, CPU)[0]) == "vmap+unfold"
    looped = resolve({"method": "maml", "dataset": "omniglot", "strategy": "graph-loop"})
    assert perf_strategies.execution_strategy(resolve_execution(looped, cuda)[0]) == "graph-loop"
    on_cpu, notes = resolve_execution(looped, CPU)
    assert perf_strategies.execution_strategy(on_cpu) == "loop" and "CUDA graph needs CUDA" in notes[0]


def test_the_fastest_table_names_the_fastest_row_that_passed_its_check(measured: dict):
    """A flagged row that is fastest is shown as fastest with its verdict, never as the usable one."""
    data = copy.deepcopy(measured)
    rows = [r for r in data["rows"] if r["implementation"] == "amfs-bench" and r["method"] == "maml"]
    cheat = next(r for r in rows if r["strategy"] == "vmap")
    cheat["ms"]["median"] = min(r["ms"]["median"] for r in rows) / 10
    cheat["grad_rel_err_vs_loop"], cheat["float64_rel_err_vs_loop"], cheat["numerics_ok"] = 1e-2, 1e-2, False
    section = perf.render_readme(data).split("## Fastest strategy per method")[1].split("\n## ")[0]
    line = next(x for x in section.splitlines() if "| maml | vmap |" in x)
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[5] == "FLAGGED (differs in float64)" and cells[6] not in ("vmap", "none")


@pytest.mark.parametrize("method", list(METHODS))
def test_reordered_examples_leave_the_meta_gradient_unchanged_in_float64(method: str):
    """The float32 floor's re-orderings must be the same function: in float64 the meta-gradient of
    the reordered batch equals the original's (and the reordering does move examples)."""
    setting = tiny_setting(steps=2)
    batch = synthetic_batch(setting, 2, 3, seed=0, device=CPU)
    reordered = perf_numerics.reorder_examples(batch, seed=1)
    assert not torch.equal(reordered.query_y, batch.query_y)
    run = perf_ours.prepare_run(setting, method, "loop", batch, CPU, 0, with_gradient=False)
    params = {k: v.detach().double().requires_grad_(True) for k, v in run.params.items()}

    def gradient64(b):
        b64 = type(b)(b.support_x.double(), b.support_y, b.query_x.double(), b.query_y)
        return perf_numerics.flat_gradient(run.learner.meta_gradients(params, b64).gradients)

    a, b = gradient64(batch), gradient64(reordered)
    torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12 * float(a.abs().max()))


def test_the_float32_floor_takes_the_largest_error_over_the_orders():
    exact = torch.tensor([1.0, 0.0], dtype=torch.float64)
    reference = torch.tensor([1.0, 1e-4], dtype=torch.float64)  # the batch as drawn: 1e-4 from float64
    row = torch.tensor([1.0, 2e-2], dtype=torch.float64)
    assert gradient_agreement(row, reference, exact, 1e-4)["ok"] is False  # tolerance 1e-3
    agreement = gradient_agreement(row, reference, exact, 1e-4, other_floor=3e-3)  # another order: 3e-3
    assert agreement["float32_floor"] == 3e-3 and agreement["tolerance"] == pytest.approx(3e-2)
    assert agreement["ok"] is True
    assert gradient_agreement(row, reference, exact, 1e-4, other_floor=1e-5)["float32_floor"] == pytest.approx(1e-4)


def test_measured_rows_record_the_floor_over_the_orders(measured: dict):
    assert measured["options"]["floor_orders"] == perf_numerics.FLOOR_ORDERS > 1
    for row in measured["rows"]:
        if row["implementation"] == "amfs-bench" and row["strategy"] == "loop":
            assert row["float32_floor"] >= row["grad_rel_err_vs_float64"]


def test_an_interrupted_run_resumes_without_measuring_its_settings_again(tmp_path: Path):
    """perf --resume keeps the finished settings of the earlier perf.json and measures the rest; an
    earlier run with other options (or code, or environment) is refused, not mixed in."""
    first, second = tiny_setting(), PerfSetting("tiny-2", {**tiny_setting().values, "inner.steps_train": 2}, 1, 12)
    options = {"methods": ["maml"], "device": CPU, "repeats": 1, "warmup": 0, "peers": [], "strategies": ["loop"]}
    earlier = perf.measure([first], **options, progress=lambda _: None)
    lines: list[str] = []
    resumed = perf.measure([first, second], **options, progress=lines.append, previous=copy.deepcopy(earlier))
    assert [s["key"] for s in resumed["settings"]] == ["tiny", "tiny-2"]
    assert [r for r in resumed["rows"] if r["setting"] == "tiny"] == earlier["rows"]  # kept, not re-measured
    assert any(r["setting"] == "tiny-2" for r in resumed["rows"])
    assert any("tiny: kept" in line for line in lines)
    assert resumed["created"] == earlier["created"] and len(resumed["resumed"]) == 1
    assert "resumed " in perf.render_readme(resumed)
    with pytest.raises(ValueError, match="options changed: repeats"):
        perf.measure([first, second], **{**options, "repeats": 2}, progress=lambda _: None, previous=earlier)
    changed_code = copy.deepcopy(earlier)
    changed_code["environment"]["source_sha256"] = "0" * 64
    with pytest.raises(ValueError, match="environment changed: source_sha256"):
        perf.measure([first], **options, progress=lambda _: None, previous=changed_code)
    more_tasks = PerfSetting("tiny", {**first.values, "meta_batch": 3}, 1, 12)  # another --meta-batch
    with pytest.raises(ValueError, match="setting tiny changed"):
        perf.measure([more_tasks, second], **options, progress=lambda _: None, previous=earlier)


def test_resume_without_an_earlier_run_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["perf", "--device", "cpu", "--reports", str(tmp_path), "--resume", "--peers", "none"]) == 2
    assert "no earlier run" in capsys.readouterr().err


def test_meta_batch_option_sets_the_tasks_of_every_setting():
    """The CPU default reduces the meta-batches (and says so); 'protocol' keeps each setting's own on
    any device; a number applies to every setting; anything else is refused."""
    cpu = {s.key: s for s in default_settings(CPU)}
    assert {k: s.config("maml")["meta_batch"] for k, s in cpu.items()} == CPU_META_BATCH
    assert cpu["omniglot-5w1s"].note == "meta-batch reduced from 32 to 4 tasks for the CPU"
    protocol = {s.key: s for s in default_settings(CPU, parse_meta_batch("protocol"))}
    assert {k: s.config("maml")["meta_batch"] for k, s in protocol.items()} == {
        "omniglot-5w1s": 32,
        "mini-imagenet-5w1s": 4,
        "mini-imagenet-5w5s": 2,
    }
    assert all(s.note == "" and "meta_batch" not in s.values for s in protocol.values())
    three = {s.key: s for s in default_settings(CPU, parse_meta_batch("3"))}
    assert all(s.config("maml")["meta_batch"] == 3 for s in three.values())
    assert three["mini-imagenet-5w5s"].note == "meta-batch raised from 2 to 3 tasks by --meta-batch"
    for bad in ("0", "-2", "all"):
        with pytest.raises(ValueError, match="--meta-batch"):
            parse_meta_batch(bad)
