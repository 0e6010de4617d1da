"""The one meta-update of the suite (meta-gradient, then the optimiser's step), eager or replayed from
a CUDA graph. Training, `perf` and the data-speed check all step through MetaUpdate.

A CUDA graph captures the whole step once and replays it every iteration: it removes the launch
overhead of the hundreds of small kernels a second-order meta-step issues. Shapes are static within
a run (fixed meta-batch, way, shot and query count), which is what graph replay needs.

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
        return eager_update(self.learner, self.params, self.optimizer, self.static_batch)

    def __call__(self, batch: TaskBatch) -> StepResult:
        for static, new in zip(self.static_batch.tensors(), batch.tensors(), strict=True):
            static.copy_(new, non_blocking=True)
        self.graph.replay()
        return self.static_result


class MetaUpdate:
    """Call with a TaskBatch: one meta-update of `params`; returns the step's StepResult (with a graph,
    its tensors are the graph's static outputs, overwritten by the next call).

    With `graph`, the step is captured on the first call. If capture fails and `fallback` is set, the
    update runs eagerly from then on and `notes` says why (a run goes on); without `fallback` the
    error propagates (perf must time what it says it times)."""

    def __init__(
        self,
        learner: MetaLearner,
        params: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        graph: bool = False,
        fallback: bool = True,
    ):
        self.learner = learner
        self.params = params
        self.optimizer = optimizer
        self.graph = graph
        self.fallback = fallback
        self.graphed: GraphedTrainStep | None = None
        self.notes: list[str] = []

    def __call__(self, batch: TaskBatch) -> StepResult:
        if self.graph and self.graphed is None:
            try:
                self.graphed = GraphedTrainStep(self.learner, self.params, self.optimizer, batch)
            except RuntimeError as e:  # an op that cannot be captured
                if not self.fallback:
                    raise
                self.notes.append(f"CUDA graph capture failed ({e}); ran without a graph")
                self.graph = False
        if self.graphed is not None:
            return self.graphed(batch)
        return eager_update(self.learner, self.params, self.optimizer, batch)


def eager_update(
    learner: MetaLearner, params: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, batch: TaskBatch
) -> StepResult:
    """The meta-gradient of `batch` handed to the optimiser as the parameters' .grad, then its step."""
    result = learner.meta_gradients(params, batch)
    for k, p in params.items():
        p.grad = result.gradients[k]
    optimizer.step()
    return result


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
