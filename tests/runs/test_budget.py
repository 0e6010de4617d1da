"""run --budget: estimates from records, perf or the fallback; which run starts next; runs that stop at
the deadline with a checkpoint and complete over several invocations with the numbers of an
uninterrupted run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.runs.budget import FALLBACK_S_PER_ITERATION, STARTUP_S, Budget, Estimate, Estimator
from benchmarks.runs.grids import load_grid
from benchmarks.runs.workers import default_workers, worker_threads

sys.path.insert(0, str(Path(__file__).parent))
from test_runner import comparable, records, run_cli, write_grid  # noqa: E402

CPU = torch.device("cpu")


def test_estimates_come_from_records_then_perf_then_the_fallback(tmp_path):
    grid = write_grid(tmp_path, methods=("fomaml", "maml"), iterations=20)
    specs = {s.method: s for s in load_grid(str(grid)).runs}
    empty_perf = tmp_path / "no-perf"
    estimator = Estimator(tmp_path / "r", CPU, perf_dir=empty_perf)
    fallback = estimator.estimate(specs["fomaml"])
    assert fallback.basis == "fallback"
    assert fallback.per_iteration_s == FALLBACK_S_PER_ITERATION[("cpu", "mlp")]
    assert fallback.seconds > STARTUP_S[("cpu", "mlp")] + 20 * fallback.per_iteration_s

    assert run_cli(grid, tmp_path / "r", "--only", "*fomaml*") == 0
    (record,) = records(tmp_path / "r", "tiny").values()
    measured = estimator.estimate(specs["fomaml"])
    assert measured.basis == "records (1)"
    assert measured.per_iteration_s == pytest.approx(record["timing"]["train_seconds"] / 20)
    # another method of the same setting: no record of it, the perf rows or the fallback decide
    assert estimator.estimate(specs["maml"]).basis == "fallback"

    perf = tmp_path / "perf" / "somewhere" / "perf.json"
    perf.parent.mkdir(parents=True)
    config = specs["maml"].config
    setting = {"key": "sinusoid-5shot", "dataset": "sinusoid", "n_way": config["n_way"], "k_shot": 5, "meta_batch": 2}
    row = {"method": "maml", "setting": "sinusoid-5shot", "ms": {"median": 3.0}, "adapt_ms": {"median": 0.5}}
    device_name = estimator.device_name
    perf.write_text(json.dumps({"environment": {"device_name": device_name}, "settings": [setting], "rows": [row]}))
    from_perf = Estimator(tmp_path / "r", CPU, perf_dir=tmp_path / "perf").estimate(specs["maml"])
    assert from_perf.basis == "perf (somewhere)"
    assert from_perf.per_iteration_s == pytest.approx(0.003 * 4 / 2)  # scaled to the run's meta-batch 4


class FixedEstimator:
    """Estimates given per run key."""

    def __init__(self, estimates: dict[str, Estimate]):
        self.estimates = estimates

    def estimate(self, spec, checkpoint=None) -> Estimate:
        return self.estimates[spec.key]


def estimate(seconds: float, chunk: float = 1.0, started: bool = False, iterations: int = 30) -> Estimate:
    left = iterations - 10 if started else iterations
    return Estimate(seconds, chunk, 0.0, left, 10, "test")


def test_which_run_starts_next(tmp_path):
    grid = write_grid(tmp_path, methods=("maml", "fomaml", "i-amfs"), iterations=30)
    a, b, c = load_grid(str(grid)).runs
    budget = Budget(1.0, FixedEstimator({}), now=0.0)  # 60 s, 3 s kept back: 57 s to go at t=0
    assert budget.reserve_s == 3.0 and budget.left(now=0.0) == 57.0
    budget.estimator = FixedEstimator({a.key: estimate(100), b.key: estimate(50), c.key: estimate(20)})
    assert budget.choose([a, b, c], tmp_path, now=0.0) == 1  # the first that fits, in order
    assert budget.choose([a, c], tmp_path, now=30.0) == 1  # 27 s left: only c fits
    assert budget.choose([a], tmp_path, now=30.0) == 0  # none fits: a makes checkpointed progress
    budget.estimator = FixedEstimator({a.key: estimate(100, chunk=40), b.key: estimate(50, started=True)})
    assert budget.choose([a, b], tmp_path, now=0.0) == 1  # an interrupted run resumes first
    assert budget.choose([a], tmp_path, now=30.0) is None  # nothing worth starting in 27 s
    assert budget.choose([a, b], tmp_path, now=57.0) is None  # the deadline


def test_workers_and_threads_default_to_one_on_the_cpu():
    from benchmarks.runs.context import RunContext

    context = RunContext(Path("d"), Path("c"), Path("r"))
    assert default_workers("cpu") == 1 and default_workers("cuda") == 4
    assert worker_threads(context, "cpu", 4) == 1
    assert worker_threads(context, "cuda", 1) is None
    assert worker_threads(context, "cuda", 2) >= 1
    assert worker_threads(RunContext(Path("d"), Path("c"), Path("r"), threads=3), "cpu", 2) == 3


def test_a_grid_completes_over_several_budgets_with_the_numbers_of_an_uninterrupted_run(tmp_path, capsys):
    # 1,000 iterations: longer than one 3-s slot even on a fast machine (4 ms per iteration)
    grid = write_grid(tmp_path, methods=("maml", "fomaml"), iterations=1000, val_every=100, checkpoint_every=20)
    lasts, codes = [], []
    for _ in range(30):
        capsys.readouterr()
        codes.append(run_cli(grid, tmp_path / "slots", "--budget", "0.05"))  # 3 s
        out = capsys.readouterr().out
        lasts.append(out.strip().splitlines()[-1])
        if lasts[-1].startswith("finished within the budget"):
            break
    assert set(codes) == {0}, lasts
    assert lasts[-1].startswith("finished within the budget"), lasts
    assert any(" interrupted (resume with the same command)" in line and "budget spent: " in line for line in lasts)
    assert all(line.startswith(("budget spent: ", "finished within the budget: ")) for line in lasts)
    slotted = records(tmp_path / "slots", "tiny")
    assert any(r["faults"]["resumed_from_iteration"] for r in slotted.values())
    assert run_cli(grid, tmp_path / "straight") == 0
    straight = records(tmp_path / "straight", "tiny")
    assert set(slotted) == set(straight)
    for key, record in slotted.items():
        assert comparable(record) == comparable(straight[key]), key


def test_a_failed_run_under_a_budget_exits_1_and_says_so(tmp_path, capsys):
    extra = '\n[[variant]]\nname = "diverge"\nmethods = ["fomaml"]\nset = { "inner.step_size" = 1e30 }\n'
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=20, extra=extra)
    assert run_cli(grid, tmp_path / "r", "--budget", "5") == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert (
        last == "finished within the budget: 1 done, 0 interrupted (resume with the same command), 0 pending, 1 failed"
    )


def test_a_budget_too_short_for_any_checkpoint_starts_nothing_and_says_what_it_needs(tmp_path, capsys):
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=400, checkpoint_every=200)
    assert run_cli(grid, tmp_path / "r", "--budget", "0.05") == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("budget spent: 0 done, 0 interrupted, 1 pending: no run can reach a checkpoint in 0.05 min")
    assert "the shortest needs about 12 s (sinusoid/5shot/fomaml/default/seed0)" in last  # 1 s + 200 x 0.05 s + reserve


def test_a_budget_must_be_positive(tmp_path, capsys):
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=2)
    assert run_cli(grid, tmp_path / "r", "--budget", "0") == 2
    assert "--budget must be a positive number of minutes" in capsys.readouterr().err


def test_term_makes_the_runs_in_flight_checkpoint_and_stop_and_the_next_command_resumes(tmp_path):
    """`timeout` or a scheduler ending a command: every worker's run checkpoints at its next
    iteration; nothing is lost or half-written, and the next command finishes the runs."""
    import os
    import signal
    import subprocess
    import time

    from benchmarks.runs.locks import lock_path
    from benchmarks.runs.store import ResultsStore

    grid = write_grid(tmp_path, methods=("maml", "fomaml"), iterations=1000, val_every=100, checkpoint_every=20)
    store = ResultsStore(tmp_path / "r", "tiny")
    ids = [s.run_id for s in load_grid(str(grid)).runs]
    cmd = [sys.executable, "-m", "benchmarks", "run", "--grid", str(grid), "--results", str(tmp_path / "r")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [*cmd, "--no-progress", "--threads", "1", "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not all(store.checkpoint_path(i).exists() for i in ids):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "late"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    assert "SIGTERM: the runs in flight checkpoint and stop" in out
    assert out.count(": signal SIGTERM: checkpointed at iteration") == 2, out
    assert "finished: 2 interrupted" in out
    assert not any(store.record_path(i).exists() or lock_path(store, i).exists() for i in ids)
    assert run_cli(grid, tmp_path / "r") == 0
    resumed = records(tmp_path / "r", "tiny")
    assert all(r["faults"]["resumed_from_iteration"] for r in resumed.values())
    assert run_cli(grid, tmp_path / "straight") == 0
    for key, record in records(tmp_path / "straight", "tiny").items():
        assert comparable(resumed[key]) == comparable(record), key
