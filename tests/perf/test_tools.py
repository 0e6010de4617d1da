"""The measuring tools of the perf package (python -m benchmarks.perf.<tool>) run on the CPU and write what
they say they write."""

from __future__ import annotations

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
