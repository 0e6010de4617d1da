"""Faults a run must survive or report, on the tiny sinusoid grid: hostile, tampered and foreign
checkpoints, a resume under other numerics, failed kernel solves and divergence at evaluation, a full
disk when the record is written, and the modes of what a run writes."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest
import torch

import amfs.kernel_inner
from benchmarks.runs import runner, store
from benchmarks.runs.grids import load_grid
from benchmarks.runs.store import ResultsStore
from benchmarks.runs.trainer import RunFailure, Trainer
from support.grids import comparable, records, run_cli, write_grid

RUN_ID = "sinusoid__5shot__fomaml__default__seed0"
KEY = "sinusoid/5shot/fomaml/default/seed0"


class Hostile:
    """Unpickling this runs code: what a crafted checkpoint would carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def leave_checkpoint(tmp_path, monkeypatch, grid, results, *extra: str):
    """Run the grid with testing made to fail, so that its run keeps a checkpoint of the finished training."""

    def interrupted(self):
        raise RunFailure("stopped before testing (test fixture)")

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "test", interrupted)
        assert run_cli(grid, results, *extra) == 1
    path = ResultsStore(results, "tiny").checkpoint_path(RUN_ID)
    assert path.exists()
    return path


def straight(tmp_path, grid) -> dict:
    assert run_cli(grid, tmp_path / "straight") == 0
    return records(tmp_path / "straight", "tiny")[KEY]


def test_a_checkpoint_carrying_code_is_not_run_and_the_run_restarts(tmp_path):
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=10)
    results = tmp_path / "r"
    marker = tmp_path / "code-ran"
    path = ResultsStore(results, "tiny").checkpoint_path(RUN_ID)
    path.parent.mkdir(parents=True)
    torch.save({"config": {}, "state": Hostile(marker)}, path)
    assert run_cli(grid, results) == 0
    assert not marker.exists()
    record = records(results, "tiny")[KEY]
    assert record["status"] == "done" and record["faults"]["resumed_from_iteration"] == []
    (note,) = [r for r in record["faults"]["recovered"] if "not used" in r]
    assert "not a plain-tensor file" in note and "restarted from iteration 0" in note
    assert comparable(record) == comparable(straight(tmp_path, grid))


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_a_tampered_or_truncated_checkpoint_is_refused_and_the_run_restarts(tmp_path, monkeypatch, damage):
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=10)
    results = tmp_path / "r"
    path = leave_checkpoint(tmp_path, monkeypatch, grid, results)
    if damage == "tampered":  # parameters changed, the recorded sha256 kept
        stored = torch.load(path, weights_only=True)
        name = next(iter(stored["payload"]["best_params"]))
        stored["payload"]["best_params"][name] += 1.0
        torch.save(stored, path)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert run_cli(grid, results) == 0
    record = records(results, "tiny")[KEY]
    assert record["faults"]["resumed_from_iteration"] == []
    (note,) = [r for r in record["faults"]["recovered"] if "not used" in r]
    assert ("does not match the recorded" if damage == "tampered" else "unreadable") in note
    assert comparable(record) == comparable(straight(tmp_path, grid))


def test_a_resume_under_another_thread_count_restarts_and_says_why(tmp_path, monkeypatch):
    """CPU thread count changes the order of reductions: resuming under another would mix two computations."""
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=10)
    results = tmp_path / "r"
    leave_checkpoint(tmp_path, monkeypatch, grid, results, "--device", "cpu")  # threads count only on the CPU
    assert run_cli(grid, results, "--device", "cpu", "--threads", "2") == 0  # the later --threads wins
    record = records(results, "tiny")[KEY]
    assert record["status"] == "done" and record["faults"]["resumed_from_iteration"] == []
    (note,) = [r for r in record["faults"]["recovered"] if "not used" in r]
    assert "other numerics (threads: 1 then, 2 now)" in note and "restarted from iteration 0" in note


def test_a_resume_under_the_same_numerics_tests_the_finished_training_without_retraining(tmp_path, monkeypatch):
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=10)
    results = tmp_path / "r"
    leave_checkpoint(tmp_path, monkeypatch, grid, results)
    assert run_cli(grid, results) == 0
    record = records(results, "tiny")[KEY]
    assert record["faults"]["resumed_from_iteration"] == [10]
    assert comparable(record) == comparable(straight(tmp_path, grid))


def failing_solves(monkeypatch, only_in_test: bool) -> None:
    """Kernel solves report failure (and give zero coefficients) at evaluation: in every evaluation, or only
    in the final test."""
    testing = [False]
    original_test, original_solve = Trainer.test, amfs.kernel_inner.kernel_ridge_solve

    def test(self):
        testing[0] = True
        try:
            return original_test(self)
        finally:
            testing[0] = False

    def solve(*args, **kwargs):
        result = original_solve(*args, **kwargs)
        if torch.is_grad_enabled() or (only_in_test and not testing[0]):
            return result
        return result._replace(alpha=torch.zeros_like(result.alpha), failed=torch.ones_like(result.failed))

    monkeypatch.setattr(Trainer, "test", test)
    monkeypatch.setattr(amfs.kernel_inner, "kernel_ridge_solve", solve)


@pytest.mark.parametrize("where", ["test", "validation"])
def test_a_failed_kernel_solve_at_evaluation_fails_the_run_with_the_reason(tmp_path, monkeypatch, capsys, where):
    grid = write_grid(tmp_path, methods=("i-amfs",), iterations=10)
    failing_solves(monkeypatch, only_in_test=where == "test")
    capsys.readouterr()
    assert run_cli(grid, tmp_path / "r") == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("1 of 1 runs failed")
    (record,) = records(tmp_path / "r", "tiny").values()
    assert record["status"] == "failed"
    episodes = 20 if where == "test" else 10
    assert f"kernel solve failed on {episodes} of {episodes} {where} episodes" in record["reason"]
    assert "raise kernel.lambda_init or kernel.max_jitter_retries" in record["reason"]


def test_divergence_at_evaluation_is_a_failure_with_its_reason_not_a_json_error(tmp_path):
    """One inner step of 1e4 trains with a finite loss; ten at validation overflow to NaN."""
    grid = write_grid(tmp_path, methods=("maml",), iterations=10)
    assert run_cli(grid, tmp_path / "r", "--set", "inner.step_size=1e4") == 1
    (record,) = records(tmp_path / "r", "tiny").values()
    assert record["status"] == "failed"
    assert record["reason"].startswith("RunFailure: diverged: non-finite validation mse on 10 of 10 episodes")
    assert "lower meta_lr" in record["reason"] and "JSON" not in record["reason"]


def test_a_failed_record_holding_non_finite_numbers_is_still_written():
    spec = load_grid("quick").runs[0]
    record = runner.failed_record(spec, "why", {"faults": {"loss": float("nan"), "curve": [float("inf")]}})
    assert record["faults"] == {"loss": "nan", "curve": ["inf"]}
    json.dumps(record, allow_nan=False)


def test_a_full_disk_at_the_record_keeps_the_run_and_says_so(tmp_path, monkeypatch, capsys):
    grid = write_grid(tmp_path, methods=("fomaml",), iterations=10)
    results = tmp_path / "r"
    real_write = store.atomic_write_json

    def full(path, obj):
        if path.parent.name == "runs":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, obj)

    with monkeypatch.context() as patch:
        patch.setattr(store, "atomic_write_json", full)
        capsys.readouterr()
        assert run_cli(grid, results) == 1
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1].startswith("1 of 1 runs failed")
    assert "cannot write the done record" in err and "No space left on device" in err
    assert "is kept, so the next run of the grid tests it again without retraining" in err
    kept = ResultsStore(results, "tiny")
    assert kept.checkpoint_path(RUN_ID).exists() and kept.read_record(RUN_ID) is None
    assert run_cli(grid, results) == 0  # space again: the finished training is tested and recorded
    record = records(results, "tiny")[KEY]
    assert record["faults"]["resumed_from_iteration"] == [10]
    assert not kept.checkpoint_path(RUN_ID).exists()
    assert comparable(record) == comparable(straight(tmp_path, grid))


def test_records_and_checkpoints_are_readable_by_the_group_and_others(tmp_path, monkeypatch):
    previous = os.umask(0o022)
    try:
        grid = write_grid(tmp_path, methods=("fomaml",), iterations=10)
        checkpoint = leave_checkpoint(tmp_path, monkeypatch, grid, tmp_path / "r")
        record = ResultsStore(tmp_path / "r", "tiny").record_path(RUN_ID)
        for path in (checkpoint, record):
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    finally:
        os.umask(previous)
