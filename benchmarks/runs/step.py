"""A whole meta-training step (meta-gradient + Adam update) captured once in a CUDA graph and
replayed every iteration: removes the launch overhead of the hundreds of small kernels a
second-order meta-step issues. Shapes are static within a run (fixed meta-batch, way, shot and
query count), which is what graph replay needs.

The warm-up iterations that capture requires would change the parameters and optimiser state; both
are snapshotted before and restored in place after, so a graphed run follows the same trajectory
as the plain one (up to floating-point reassociation in capturable Adam).
"""

from __future__ import annotations

import torch

from benchmarks.data.tasks import TaskBatch
from benchmarks.learner.meta_learner import MetaLearner, StepResult

WARMUP_STEPS = 3


class GraphedTrainStep:
    """Call with a TaskBatch of the captured shapes; returns the StepResult of that step (its
    tensors are the graph's static outputs, overwritten by the next call)."""

    def __init__(
        self,
        learner: MetaLearner,
        params: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        example: TaskBatch,
    ):
        for group in optimizer.param_groups:
            if not group.get("capturable", False):
                raise ValueError("CUDA-graph capture needs an optimiser built with capturable=True")
        self.learner = learner
        self.params = params
        self.optimizer = optimizer
        self.static_batch = TaskBatch(*(t.clone() for t in example.tensors()))
        saved_params = {k: v.detach().clone() for k, v in params.items()}
        saved_state = _snapshot_optimizer(optimizer)

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self._step()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_result = self._step()
        except BaseException:
            for v in params.values():  # warm-up gradients: the caller runs eagerly and sets its own
                v.grad = None
            raise
        finally:
            # Also when capture fails: the caller then runs eagerly from the untouched start.
            torch.cuda.current_stream().wait_stream(side)
            with torch.no_grad():
                for k, v in params.items():
                    v.copy_(saved_params[k])
            _restore_optimizer(optimizer, saved_state)

    def _step(self) -> StepResult:
        result = self.learner.meta_gradients(self.params, self.static_batch)
        for k, p in self.params.items():
            p.grad = result.gradients[k]
        self.optimizer.step()
        return result

    def __call__(self, batch: TaskBatch) -> StepResult:
        for static, new in zip(self.static_batch.tensors(), batch.tensors(), strict=True):
            static.copy_(new, non_blocking=True)
        self.graph.replay()
        return self.static_result


def _snapshot_optimizer(optimizer: torch.optim.Optimizer) -> dict:
    return {p: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()} for p, s in optimizer.state.items()}


def _restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Put back the pre-warm-up state in place (the graph holds these tensors' addresses)."""
    for p, state in optimizer.state.items():
        before = saved.get(p)
        for k, v in state.items():
            if not torch.is_tensor(v):
                continue
            if before is None or k not in before:
                v.zero_()
            else:
                v.copy_(before[k])
