"""`perf` times the learner a training run trains: for every method, perf's prepared run has the
trainer's initial parameters and computes its meta-gradient, and one perf step moves the parameters
as one training step does (both build through runs.build and step through runs.step)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.learner.registry import METHODS
from benchmarks.perf.numerics import flat_gradient
from benchmarks.perf.ours import prepare_run, release_gradients
from benchmarks.perf.settings import synthetic_batch
from benchmarks.runs.config import resolve
from benchmarks.runs.grids import RunSpec
from benchmarks.runs.trainer import Trainer
from support.perf import tiny_setting

CPU = torch.device("cpu")
SEED = 3


class FixedSource:
    """A task source that hands out one meta-batch, whatever the index (the trainer's first batch)."""

    def __init__(self, batch):
        self.batch = batch

    def tasks(self, seed: int, index: int, n_tasks: int):
        return self.batch


def trainer_for(method: str, batch, tmp_path: Path) -> Trainer:
    """A Trainer of `method` configured as perf's 'loop' row is (cuDNN layout, the loop strategy)."""
    values = {**tiny_setting().values, "method": method, "seed": SEED, "strategy": "loop", "backbone.conv": "cudnn"}
    config = resolve(values)
    spec = RunSpec(
        f"omniglot/3w1s/{method}/default/seed{SEED}", "t", method, "omniglot", "3w1s", "default", SEED, config, {}
    )
    sources = {split: FixedSource(batch) for split in ("train", "val", "test")}
    return Trainer(spec, sources, CPU, tmp_path / "checkpoint.pt", progress=False)


@pytest.mark.parametrize("method", list(METHODS))
def test_perf_prepares_the_trainers_learner_and_steps_it_the_same_way(method: str, tmp_path: Path):
    setting = tiny_setting()
    batch = synthetic_batch(setting, tasks=2, query=2, seed=0, device=CPU)
    trainer = trainer_for(method, batch, tmp_path)
    run = prepare_run(setting, method, "loop", batch, CPU, SEED)
    try:
        assert run.config == trainer.config
        assert run.execution == trainer.execution
        trainer.assembly.initialise_from_data(batch)  # what Trainer.train does before its first step
        assert run.params.keys() == trainer.params.keys()
        for name, value in trainer.params.items():
            assert torch.equal(run.params[name], value), name
        expected = flat_gradient(trainer.learner.meta_gradients(trainer.params, batch).gradients)
        assert run.initial_gradient is not None
        torch.testing.assert_close(run.initial_gradient, expected, rtol=0, atol=0)
        run.step()
        trainer._step(batch)
        for name, value in trainer.params.items():
            torch.testing.assert_close(run.params[name], value, rtol=0, atol=0, msg=name)
    finally:
        release_gradients(run.params)
