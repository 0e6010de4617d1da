"""perf_timing.TensorMemory: the peak of live tensor storage created during a call, exact on any device."""

from __future__ import annotations

import pytest
import torch

from benchmarks.perf.ours import prepare_run, release_gradients
from benchmarks.perf.settings import PerfSetting, synthetic_batch
from benchmarks.perf.timing import TensorMemory, tensor_memory_mib

CPU = torch.device("cpu")
MIB = 2**20


def test_counts_each_storage_once_and_releases_it_when_freed():
    with TensorMemory() as memory:
        a = torch.empty(1024, 1024)  # 4 MiB
        view = a[:10]  # shares a's storage: nothing new
        b = a.t().contiguous()  # 4 MiB more: peak 8
        del b
        c = torch.zeros(256, 1024)  # 1 MiB, after b is gone
    assert memory.peak_bytes == 8 * MIB
    assert memory.live_bytes == 5 * MIB
    assert view.untyped_storage().data_ptr() == a.untyped_storage().data_ptr() and c.numel() == 256 * 1024


def test_counts_what_the_backward_pass_allocates_and_not_what_existed_before():
    x = torch.rand(1024, 1024, requires_grad=True)  # before: not counted
    with TensorMemory() as memory:
        rows = x[:512]  # a view of it is no new memory either
        rows.detach().add_(0.0)  # nor an in-place result
        (grad,) = torch.autograd.grad(x.exp().sum(), x)  # exp's result (saved) + its gradient: 8 MiB
    assert 8 * MIB <= memory.peak_bytes < 8 * MIB + 1024
    assert grad.shape == x.shape


def _setting(tasks: int) -> PerfSetting:
    values = {
        "dataset": "omniglot",
        "n_way": 3,
        "k_shot": 1,
        "meta_batch": tasks,
        "query_train": 4,
        "query_test": 2,
        "backbone.filters": 8,
        "inner.steps_train": 2,
    }
    return PerfSetting("small", values, 1, 28)


def _step_mib(method: str, strategy: str, tasks: int) -> float:
    setting = _setting(tasks)
    batch = synthetic_batch(setting, tasks, 4, seed=0, device=CPU)
    run = prepare_run(setting, method, strategy, batch, CPU, seed=0, with_gradient=False)
    try:
        run.step()  # the optimiser's state exists from here on, as after perf's timed calls
        first = tensor_memory_mib(run.step, CPU)
        assert tensor_memory_mib(run.step, CPU) == first  # the same count every time
        return first
    finally:
        release_gradients(run.params)


@pytest.mark.parametrize("method", ["maml", "i-amfs"])
def test_a_meta_iteration_holds_one_task_at_a_time_in_the_loop_and_every_task_when_batched(method: str):
    """The same computation costs the same memory (batched with one task is the loop); with four
    tasks the loop frees each task's graph before the next, the batched step holds all four."""
    loop_1, batched_1 = _step_mib(method, "loop", 1), _step_mib(method, "batched", 1)
    assert batched_1 == pytest.approx(loop_1, rel=0.03)
    loop_4, batched_4 = _step_mib(method, "loop", 4), _step_mib(method, "batched", 4)
    assert loop_4 < 1.5 * loop_1
    assert batched_4 > 3.5 * batched_1


@pytest.mark.parametrize("method", ["maml", "o-amfs"])
def test_the_loop_keeps_no_list_of_every_tasks_gradients(method: str):
    """From 1 to 8 tasks the loop's peak grows by at most three copies of the parameters (the running sum,
    or O-AMFS's [T, parameters] matrix of per-task gradients, which it needs): not by a gradient list
    and its stacked copy per task."""
    setting = _setting(1)
    batch = synthetic_batch(setting, 1, 4, seed=0, device=CPU)
    params = prepare_run(setting, method, "loop", batch, CPU, seed=0, with_gradient=False).params
    parameter_mib = sum(p.numel() * p.element_size() for p in params.values()) / MIB
    release_gradients(params)
    growth = _step_mib(method, "loop", 8) - _step_mib(method, "loop", 1)
    per_task_matrix = 8 * parameter_mib if method == "o-amfs" else 0.0
    assert growth <= per_task_matrix + 3 * parameter_mib, (growth, parameter_mib)
