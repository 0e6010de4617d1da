"""`python -m benchmarks data speed`: sampling against a meta-iteration of the learner a run trains."""

from __future__ import annotations

from benchmarks.data import omniglot
from benchmarks.perf import data_speed
from support.datasets import SIZES, make_folders


def test_speed_refuses_an_absent_cuda(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert data_speed.speed(tmp_path, tmp_path / "cache", "cuda") == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_speed_times_sampling_and_the_runs_own_maml_step_on_the_cpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(omniglot, "SPLIT_SIZES", SIZES)
    root = make_folders(tmp_path / "data")
    assert data_speed.speed(root, tmp_path / "cache", "cpu") == 0
    out = capsys.readouterr().out
    assert "amfs-bench EpisodeSampler.tasks: 32 tasks of 5-way 1-shot with 15 queries per class" in out
    # the step is the one an Omniglot run trains: the protocol's step size and the CPU's strategy
    assert "1 inner step of size 0.4" in out and "4 tasks, strategy batched," in out
    assert "sampling / meta-iteration, both for 32 tasks:" in out
