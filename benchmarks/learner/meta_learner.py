"""A method as the composition inner loop x outer loop (+ regularizer), and its meta-gradient.

Per task, the objective is the inner loop's query loss plus the regularizer's penalty. Over a
meta-batch, the outer loop turns the task gradients into the meta-gradient. Three strategies compute
the same thing: 'loop' (one task at a time, plain autograd, as learn2learn computes it), 'vmap' (all tasks in
one batched computation with torch.func) and 'batched' (all tasks in one network whose layers are
grouped by task, plain autograd and fused batch norm; for inner loops that provide
query_outputs_tasks, which both the gradient and the kernel inner loop do, and the same as 'vmap'
for any other). An outer loop that needs per-task
gradients (O-AMFS) gets them from vmap(grad(...)); the mean outer loop only needs the gradient of
the mean loss, which is cheaper.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.data.tasks import TaskBatch
from benchmarks.learner.backbones import backbone_forward, backbone_forward_tasks

Params = dict[str, Tensor]
STRATEGIES = ("loop", "vmap", "batched")


class InnerLoop(Protocol):
    task: str

    def init_parameters(self, feature_dim: int, generator: torch.Generator) -> Params: ...

    def query_outputs(
        self, features: Any, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, training: bool
    ) -> tuple[Tensor, dict[str, Tensor]]: ...


class OuterLoop(Protocol):
    needs_per_task_gradients: bool

    def combine(self, task_gradients: Tensor) -> Tensor: ...


class Regularizer(Protocol):
    def __call__(self, outputs: Tensor, targets: Tensor, task: str) -> Tensor: ...


def _gradients(objective: Tensor, tensors: list[Tensor]) -> tuple[Tensor, ...]:
    """d objective / d each tensor; zeros for a tensor the objective does not use."""
    grads = torch.autograd.grad(objective, tensors, allow_unused=True)
    return tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors, strict=True))


@dataclass
class StepResult:
    gradients: Params
    task_losses: Tensor  # [T] query loss without the penalty
    task_metrics: Tensor  # [T] accuracy (classification) or MSE (regression)
    jitter_retries: Tensor  # [] total over the meta-batch
    solve_failed: Tensor  # [] bool, any task's solve exhausted its retries


class MetaLearner:
    """Backbone + inner loop + outer loop + optional regularizer, evaluated functionally."""

    def __init__(
        self,
        backbone: nn.Module,
        inner: InnerLoop,
        outer: OuterLoop,
        regularizer: Regularizer | None = None,
        strategy: str = "loop",
        backbone_dtype: torch.dtype | None = None,
    ):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.backbone = backbone
        self.inner = inner
        self.outer = outer
        self.regularizer = regularizer
        self.strategy = strategy
        # precision bf16 (benchmarks.device.execution.backbone_dtype): the backbone under autocast
        self.backbone_dtype = backbone_dtype

    def features(self, params: Params, x: Tensor, stats_rows: int | None, differentiated_twice: bool = False) -> Tensor:
        """Features of one task's examples (the inner loops' FeatureFn). Fused batch norm is exact
        outside vmap and much faster on the CPU; under vmap it is wrong only where a pass is
        differentiated twice (backbones.batch_norm)."""
        fused = self.strategy == "loop" or not differentiated_twice
        with self._backbone_precision(x):
            features = backbone_forward(self.backbone, params, x, stats_rows, fused_norm=fused)
        return features.to(x.dtype)

    def task_features(
        self, params: Params, x: Tensor, stats_rows: int | None, differentiated_twice: bool = False
    ) -> Tensor:
        """Features of T tasks at once, each with its own parameters (leading task dimension)."""
        with self._backbone_precision(x):
            features = backbone_forward_tasks(self.backbone, params, x, stats_rows, differentiated_twice)
        return features.to(x.dtype)

    def _backbone_precision(self, x: Tensor) -> AbstractContextManager[object]:
        """Autocast to backbone_dtype, if set. Autocast leaves float64 alone, so a float64 check of a
        bf16 learner computes the same function as the float32 one's."""
        if self.backbone_dtype is None:
            return nullcontext()
        # no cast cache: each weight is cast once per pass anyway, and a cache must not outlive a CUDA-graph capture
        return torch.autocast(x.device.type, dtype=self.backbone_dtype, cache_enabled=False)

    @property
    def _batched(self) -> bool:
        return self.strategy == "batched" and hasattr(self.inner, "query_outputs_tasks")

    def init_parameters(self, backbone_params: Params, seed: int) -> Params:
        """Backbone parameters plus the inner loop's own (head or kernel), all as trainable leaves."""
        generator = torch.Generator().manual_seed(seed + 1)
        own = self.inner.init_parameters(self.backbone.feature_dim, generator)
        params = {**backbone_params, **own}
        return {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}

    # --- one task -------------------------------------------------------------------------
    def _task_metric(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if self.inner.task == "classification":
            return (outputs.argmax(-1) == targets).float().mean()
        return F.mse_loss(outputs, targets.reshape(outputs.shape))

    def _query_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if self.inner.task == "classification":
            return F.cross_entropy(outputs, targets)
        return F.mse_loss(outputs, targets.reshape(outputs.shape))

    def _task_objective(
        self, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor]]:
        outputs, diag = self.inner.query_outputs(self.features, params, support_x, support_y, query_x, True)
        loss = self._query_loss(outputs, query_y)
        objective = loss if self.regularizer is None else loss + self.regularizer(outputs, query_y, self.inner.task)
        retries = diag.get("jitter_retries", torch.zeros((), dtype=torch.int32, device=loss.device))
        failed = diag.get("solve_failed", torch.zeros((), dtype=torch.bool, device=loss.device))
        aux = (loss.detach(), self._task_metric(outputs.detach(), query_y), retries, failed)
        return objective, aux

    # --- a meta-batch ---------------------------------------------------------------------
    def meta_gradients(self, params: Params, batch: TaskBatch) -> StepResult:
        """The meta-gradient of one meta-batch, as the outer loop defines it."""
        per_task = self.outer.needs_per_task_gradients
        if self._batched:
            grads, aux = self._batched_gradients(params, batch, per_task)
        elif self.strategy in ("vmap", "batched"):
            # torch.func.grad needs no requires_grad; on the trainable leaves themselves it would also
            # record its own backward in their autograd graph and hand back gradients holding it alive.
            grads, aux = self._vmap_gradients({k: v.detach() for k, v in params.items()}, batch, per_task)
        else:
            grads, aux = self._loop_gradients(params, batch, per_task)
        losses, metrics, retries, failed = aux
        return StepResult(grads, losses, metrics, retries.sum(), failed.any())

    def _combine(self, params: Params, stacked: Params) -> Params:
        """Outer-loop combination of per-task gradients {name: [T, ...]} -> {name: [...]}."""
        flat = torch.cat([stacked[k].reshape(stacked[k].shape[0], -1) for k in params], dim=1)
        return self._combine_flat(params, flat)

    def _combine_flat(self, params: Params, flat: Tensor) -> Params:
        """Outer-loop combination of per-task gradients [T, all parameters in params' order]."""
        names = list(params)
        combined = self.outer.combine(flat)
        out, offset = {}, 0
        for k in names:
            n = params[k].numel()
            out[k] = combined[offset : offset + n].view_as(params[k])
            offset += n
        return out

    def _vmap_gradients(self, params: Params, batch: TaskBatch, per_task: bool):
        in_dims = (None, 0, 0, 0, 0)
        if per_task:
            task_grad = torch.func.grad(self._task_objective, has_aux=True)
            stacked, aux = torch.func.vmap(task_grad, in_dims=in_dims)(params, *batch.tensors())
            return self._combine(params, stacked), aux

        def mean_objective(p: Params):
            objectives, aux = torch.func.vmap(self._task_objective, in_dims=in_dims)(p, *batch.tensors())
            return objectives.mean(), aux

        return torch.func.grad(mean_objective, has_aux=True)(params)

    def _batched_outputs(
        self, params: Params, batch: TaskBatch, training: bool
    ) -> tuple[Tensor, dict[str, Tensor], Params]:
        """Query outputs of every task [T, Nq, outputs] and per-task diagnostics, from one copy of the
        parameters per task (returned too)."""
        expanded = {k: v.unsqueeze(0).expand(batch.n_tasks, *v.shape) for k, v in params.items()}
        outputs, diag = self.inner.query_outputs_tasks(  # type: ignore[attr-defined]
            self.task_features, expanded, batch.support_x, batch.support_y, batch.query_x, training
        )
        return outputs, diag, expanded

    def _per_task_loss_and_metric(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Query loss and metric of every task [T] each, as _query_loss and _task_metric per task."""
        if self.inner.task == "classification":
            loss = F.cross_entropy(outputs.transpose(1, 2), targets, reduction="none").mean(1)
            return loss, (outputs.detach().argmax(-1) == targets).float().mean(1)
        error = (outputs - targets.reshape(outputs.shape)).square().flatten(1).mean(1)
        return error, error.detach()

    def _batched_gradients(self, params: Params, batch: TaskBatch, per_task: bool):
        outputs, diag, expanded = self._batched_outputs(params, batch, training=True)
        losses, metrics = self._per_task_loss_and_metric(outputs, batch.query_y)
        objectives = losses
        if self.regularizer is not None:
            penalties = [self.regularizer(outputs[i], batch.query_y[i], self.inner.task) for i in range(batch.n_tasks)]
            objectives = losses + torch.stack(penalties)
        names = list(params)
        t = batch.n_tasks
        aux = (
            losses.detach(),
            metrics,
            diag.get("jitter_retries", torch.zeros(t, dtype=torch.int32, device=losses.device)),
            diag.get("solve_failed", torch.zeros(t, dtype=torch.bool, device=losses.device)),
        )
        if per_task:  # each task's objective depends only on its own copy: d(sum)/d(copy t) is task t's gradient
            stacked = _gradients(objectives.sum(), [expanded[k] for k in names])
            return self._combine(params, dict(zip(names, stacked, strict=True))), aux
        return dict(zip(names, _gradients(objectives.mean(), [params[k] for k in names]), strict=True)), aux

    def _loop_gradients(self, params: Params, batch: TaskBatch, per_task: bool):
        """One task at a time. Each task's gradients go straight into the running sum (mean outer
        loop) or into their row of one [T, parameters] matrix (per-task outer loop), so that no list
        of every task's gradients is kept beside them: with 32 Omniglot tasks that list and its stacked
        copy held more memory than one task's activations."""
        names = list(params)
        tensors = [params[k] for k in names]
        t = batch.n_tasks
        total: list[Tensor] | None = None
        rows: Tensor | None = None
        auxes = []
        for i in range(t):
            objective, aux = self._task_objective(params, *(x[i] for x in batch.tensors()))
            grads = _gradients(objective, tensors)
            auxes.append(aux)
            if per_task:
                if rows is None:
                    rows = torch.empty(t, sum(g.numel() for g in grads), dtype=grads[0].dtype, device=grads[0].device)
                torch.cat([g.reshape(-1) for g in grads], out=rows[i])
            elif total is None:
                total = [g.clone() for g in grads]  # accumulated in place; a gradient may be a view
            else:
                for acc, g in zip(total, grads, strict=True):
                    acc.add_(g)
        aux = tuple(torch.stack(parts) for parts in zip(*auxes, strict=True))
        if per_task:
            assert rows is not None
            return self._combine_flat(params, rows), aux
        assert total is not None
        return {k: acc.div_(t) for k, acc in zip(names, total, strict=True)}, aux

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self, params: Params, batch: TaskBatch) -> tuple[Tensor, Tensor]:
        """Per-task query metric (accuracy or MSE) and loss after test-time adaptation, [T] each."""
        metric, loss, _ = self.evaluate_checked(params, batch)
        return metric, loss

    def evaluate_checked(self, params: Params, batch: TaskBatch) -> tuple[Tensor, Tensor, Tensor]:
        """evaluate, plus per-task solve failure [T] bool: a kernel solve that stayed singular after its
        jitter retries gives meaningless outputs, so its metric must not be counted as a result."""

        def one_task(p: Params, sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            outputs, diag = self.inner.query_outputs(self.features, p, sx, sy, qx, False)
            failed = diag.get("solve_failed", torch.zeros((), dtype=torch.bool, device=outputs.device))
            return self._task_metric(outputs, qy), self._query_loss(outputs, qy), failed

        detached = {k: v.detach() for k, v in params.items()}
        with torch.no_grad():
            if self._batched:
                outputs, diag, _ = self._batched_outputs(detached, batch, training=False)
                loss, metric = self._per_task_loss_and_metric(outputs, batch.query_y)
                failed = diag.get("solve_failed", torch.zeros(batch.n_tasks, dtype=torch.bool, device=loss.device))
                return metric, loss, failed
            if self.strategy in ("vmap", "batched"):
                return torch.func.vmap(one_task, in_dims=(None, 0, 0, 0, 0))(detached, *batch.tensors())
            results = [one_task(detached, *(t[i] for t in batch.tensors())) for i in range(batch.n_tasks)]
        return tuple(torch.stack([r[j] for r in results]) for j in range(3))  # type: ignore[return-value]
