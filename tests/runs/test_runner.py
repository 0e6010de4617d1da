"""The harness end to end on sinusoid regression (needs no files): determinism, failures recorded
while the grid goes on, kill -9 and resume, the submitit-local executor, listing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.runs.config import ConfigError
from benchmarks.runs.grids import load_grid
from benchmarks.runs.store import ResultsStore
from support.grids import GRID, comparable, records, run_cli, write_grid

PROJECT = Path(__file__).resolve().parents[2]


def test_same_seed_twice_gives_identical_records(tmp_path):
    grid = write_grid(tmp_path)
    assert run_cli(grid, tmp_path / "a") == 0
    assert run_cli(grid, tmp_path / "b") == 0
    a, b = records(tmp_path / "a", "tiny"), records(tmp_path / "b", "tiny")
    assert set(a) == {"sinusoid/5shot/maml/default/seed0", "sinusoid/5shot/i-amfs/default/seed0"}
    for key in a:
        assert a[key]["status"] == "done"
        assert a[key]["test"]["per_episode"] == b[key]["test"]["per_episode"]
        assert comparable(a[key]) == comparable(b[key])
        assert len(a[key]["test"]["per_episode"]) == 20


def test_record_holds_what_reproduction_needs(tmp_path):
    grid = write_grid(tmp_path, methods=("amfs",))
    assert run_cli(grid, tmp_path / "r") == 0
    (record,) = records(tmp_path / "r", "tiny").values()
    assert record["config"]["regularizer.mu"] > 0 and record["config"]["seed"] == 0
    for field in ("device_name", "torch", "python", "git_revision", "execution"):
        assert field in record["environment"]
    assert record["data"]["train"]["dataset"] == "sinusoid"
    assert record["validation"]["curve"] and record["validation"]["best_iteration"] > 0
    assert record["timing"]["meta_iteration_ms_median"] > 0
    assert record["faults"]["jitter_retries"] >= 0
    assert record["test"]["ci95"] > 0


def test_rerun_skips_finished_runs(tmp_path, capsys):
    grid = write_grid(tmp_path)
    assert run_cli(grid, tmp_path / "r") == 0
    paths = sorted((tmp_path / "r" / "tiny" / "runs").glob("*.json"))
    before = [p.stat().st_mtime_ns for p in paths]
    capsys.readouterr()
    assert run_cli(grid, tmp_path / "r") == 0
    assert "2 already done, 0 to run" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in paths] == before


def test_divergent_run_is_recorded_failed_and_the_grid_goes_on(tmp_path, capsys):
    extra = '\n[[variant]]\nname = "diverge"\nmethods = ["maml"]\nset = { "inner.step_size" = 1e30 }\n'
    grid = write_grid(tmp_path, methods=("maml",), extra=extra)
    capsys.readouterr()
    assert run_cli(grid, tmp_path / "r") == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("1 of 2 runs failed")
    recs = records(tmp_path / "r", "tiny")
    assert recs["sinusoid/5shot/maml/default/seed0"]["status"] == "done"
    failed = recs["sinusoid/5shot/maml/diverge/seed0"]
    assert failed["status"] == "failed" and "diverged: non-finite meta-training loss at iteration 0" in failed["reason"]
    capsys.readouterr()
    main(["list", "--grid", str(grid), "--results", str(tmp_path / "r")])
    listing = capsys.readouterr().out
    assert "diverge" in listing and "failed" in listing and "non-finite" in listing
    # Rerunning retries only the failed run.
    capsys.readouterr()
    run_cli(grid, tmp_path / "r")
    assert "1 already done, 1 to run" in capsys.readouterr().out


def test_unknown_setting_is_an_error_listing_valid_ones(tmp_path, capsys):
    grid = write_grid(tmp_path)
    assert run_cli(grid, tmp_path / "r", "--set", "meta_bach=3") == 2
    err = capsys.readouterr().err
    assert "meta_bach" in err and "did you mean meta_batch" in err and "Valid settings" in err
    with pytest.raises(ConfigError, match="iterations must be a int"):
        load_grid(str(grid), {"iterations": "many"})


def test_changed_config_does_not_overwrite_stored_results(tmp_path, capsys):
    grid = write_grid(tmp_path, methods=("maml",))
    assert run_cli(grid, tmp_path / "r") == 0
    capsys.readouterr()
    assert run_cli(grid, tmp_path / "r", "--set", "meta_lr=0.01") == 2
    assert "different config" in capsys.readouterr().err


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    grid = write_grid(
        tmp_path, name="killed", methods=("maml", "amfs"), iterations=400, val_every=50, checkpoint_every=20
    )
    results = tmp_path / "interrupted"
    store = ResultsStore(results, "killed")
    command = [sys.executable, "-m", "benchmarks", "run", "--grid", str(grid), "--results", str(results)]
    command += ["--no-progress", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True)
    second = "sinusoid__5shot__amfs__default__seed0"
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            first_done = any(store.runs_dir.glob("*maml*.json")) if store.runs_dir.exists() else False
            if first_done and store.checkpoint_path(second).exists():
                break
            assert proc.poll() is None, "the grid finished before it could be interrupted"
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint of the second run appeared in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert store.read_record(second) is None
    finished_before = store.record_path("sinusoid__5shot__maml__default__seed0").stat().st_mtime_ns

    assert run_cli(grid, results) == 0
    assert store.record_path("sinusoid__5shot__maml__default__seed0").stat().st_mtime_ns == finished_before
    resumed = store.read_record(second)
    assert resumed["faults"]["resumed_from_iteration"] and resumed["faults"]["resumed_from_iteration"][0] > 0
    assert not store.checkpoint_path(second).exists()

    assert run_cli(grid, tmp_path / "straight") == 0
    straight = records(tmp_path / "straight", "killed")
    for key, record in records(results, "killed").items():
        assert comparable(record) == comparable(straight[key]), key


def test_submitit_local_executor_runs_the_same_path(tmp_path):
    pytest.importorskip("submitit")
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=10)
    assert run_cli(grid, tmp_path / "s", "--executor", "submitit-local", "--time", "10") == 0
    assert run_cli(grid, tmp_path / "l") == 0
    (via_submitit,) = records(tmp_path / "s", "tiny").values()
    (local,) = records(tmp_path / "l", "tiny").values()
    assert via_submitit["status"] == "done"
    assert comparable(via_submitit) == comparable(local)
    assert any((tmp_path / "s" / "tiny" / "jobs").iterdir())


def test_missing_dataset_is_reported_not_run_with_the_fix(tmp_path, capsys):
    text = (
        GRID.format(methods='"maml", "amfs"', iterations=2, val_every=1, checkpoint_every=1)
        .replace('dataset = "sinusoid"', 'dataset = "omniglot"\nn_way = 5')
        .replace("k_shot = 5", "k_shot = 1")
    )
    grid = tmp_path / "nodata.toml"
    grid.write_text(text)
    where = ["--data-root", str(tmp_path / "empty"), "--cache-dir", str(tmp_path / "no-cache")]
    code = main(["run", "--grid", str(grid), "--results", str(tmp_path / "r"), *where])
    assert code == 1
    record = records(tmp_path / "r", "nodata")["omniglot/5w1s/maml/default/seed0"]
    assert record["status"] == "failed" and record["reason"].startswith("not run: data absent")
    assert "omniglot" in record["reason"].lower()
    assert f"The data root is {tmp_path / 'empty'}: point --data-root (or $AMFS_DATA_ROOT)" in record["reason"]
    json.dumps(record)
    out = capsys.readouterr().out
    # the shared reason is printed once for both runs, not once per run
    assert out.count("not run: data absent") == 1 and "2 runs (omniglot/5w1s/maml/default/seed0, ...)" in out
    assert out.strip().splitlines()[-1] == "2 of 2 runs failed (grid nodata); their reasons are above"


def test_a_run_tested_on_one_episode_is_listed_without_a_ci(tmp_path, capsys):
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=2)
    assert run_cli(grid, tmp_path / "r", "--set", "test_episodes=1") == 0
    (record,) = records(tmp_path / "r", "tiny").values()
    assert record["test"]["episodes"] == 1 and record["test"]["ci95"] is None
    capsys.readouterr()
    assert main(["list", "--grid", str(grid), "--results", str(tmp_path / "r"), "--set", "test_episodes=1"]) == 0
    assert "done         mse" in capsys.readouterr().out
