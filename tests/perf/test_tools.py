"""The measuring tools of the perf package (python -m benchmarks.perf.<tool>) run on the CPU and write what
they say they write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.perf.peers import import_learn2learn

ROOT = Path(__file__).resolve().parents[2]


def profile_step(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    out = tmp_path / "profile.txt"
    command = [sys.executable, "-m", "benchmarks.perf.profile_step", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*command, *options], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("strategy", ["loop", "learn2learn"])
def test_profile_step_writes_the_operator_table_of_ours_and_of_learn2learn(tmp_path: Path, strategy: str):
    if strategy == "learn2learn" and import_learn2learn()[0] is None:
        pytest.skip("learn2learn is not installed (nox -s perf installs it)")
    done = profile_step(tmp_path, "--setting", "omniglot-5w1s", "--method", "maml", "--strategy", strategy,
                        "--meta-batch", "2", "--steps", "1", "--rows", "5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "profile.txt").read_text()
    assert table.startswith(f"omniglot-5w1s maml [{strategy}] on cpu, 1 meta-iterations")
    assert "aten::" in table and "Self CPU" in table


def test_profile_step_refuses_a_method_learn2learn_does_not_have(tmp_path: Path):
    done = profile_step(tmp_path, "--method", "amfs", "--strategy", "learn2learn")
    assert done.returncode == 2 and "learn2learn has maml, fomaml only" in done.stderr


def test_workers_throughput_tool_measures_each_level_on_a_tiny_grid(tmp_path):
    """python -m benchmarks.perf.workers, as a GPU machine runs it, on a tiny sinusoid grid."""
    from benchmarks.perf import workers

    grid = tmp_path / "tiny.toml"
    grid.write_text(
        'methods = ["fomaml"]\nseeds = [0, 1, 2, 3]\n[defaults]\ndataset = "sinusoid"\nmeta_batch = 2\n'
        "iterations = 5\nval_every = 5\nval_episodes = 2\ntest_episodes = 2\n[[setting]]\nk_shot = 5\n"
    )
    out = tmp_path / "out"
    assert workers.main(["--device", "cpu", "--out", str(out), "--levels", "1,2", "--grid", str(grid)]) == 0
    result = json.loads((out / "workers.json").read_text())
    assert [(r["workers"], r["runs"]) for r in result["rows"]] == [(1, 2), (2, 4)]
    assert all(r["runs_per_hour"] > 0 for r in result["rows"]) and result["rows"][0]["speedup"] == 1.0
    assert result["command"].startswith("python -m benchmarks.perf.workers --device cpu")
    assert len(list((out / "level-2" / "tiny" / "runs").glob("*.json"))) == 4
    assert "| workers | runs |" in (out / "README.md").read_text()
