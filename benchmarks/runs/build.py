"""The one assembly of a run's learner from a resolved config: execution on the device, backbone,
inner loop x outer loop (+ regularizer), initial parameters and optimiser. Training, `perf` and the
data-speed check all build through `assemble`, so what perf times is what a run trains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from benchmarks.data.datasets import dataset_info
from benchmarks.data.tasks import TaskBatch
from benchmarks.device.execution import Execution, backbone_dtype, resolve_execution
from benchmarks.learner.backbones import BackboneSpec, build_backbone
from benchmarks.learner.meta_learner import MetaLearner
from benchmarks.learner.registry import build_inner, build_outer, build_regularizer, inner_loop_class
from benchmarks.runs.step import MetaUpdate

Params = dict[str, Tensor]


@dataclass
class Assembly:
    """A run's learner with its trainable parameters (leaves on the device) and optimiser."""

    config: dict[str, Any]
    execution: Execution
    notes: list[str]  # fallbacks taken when resolving the execution (a CUDA graph on the CPU ...)
    learner: MetaLearner
    params: Params
    optimizer: torch.optim.Optimizer

    def meta_update(self, fallback: bool = True) -> MetaUpdate:
        """The run's meta-update (eager, or replayed from a CUDA graph when the execution says so)."""
        return MetaUpdate(self.learner, self.params, self.optimizer, self.execution.graph, fallback)

    def initialise_from_data(self, batch: TaskBatch) -> None:
        """The inner loop's data-dependent initialisation (the kernel's sigma from the features of a
        first meta-batch), where it has one; in place."""
        init = getattr(self.learner.inner, "data_dependent_init", None)
        if init is None:
            return
        with torch.no_grad():
            for k, v in init(self.learner.features, self.params, batch.support_x, batch.query_x).items():
                self.params[k].copy_(v)


def execution_for(config: dict[str, Any], device: torch.device) -> tuple[Execution, list[str]]:
    """How a config runs on a device (device.execution), given its inner loop and backbone."""
    batched_on_cuda = inner_loop_class(config).batched_on_cuda
    return resolve_execution(config, device, batched_on_cuda, dataset_info(config["dataset"]).backbone)


def backbone_spec(config: dict[str, Any], conv_impl: str = "cudnn") -> BackboneSpec:
    """The backbone of a config: the dataset's kind and input shape, the config's width and pooling."""
    dataset = dataset_info(config["dataset"])
    if dataset.backbone == "mlp":
        return BackboneSpec(kind="mlp", in_channels=dataset.channels)
    assert dataset.image_size is not None
    return BackboneSpec(
        "conv4", dataset.channels, dataset.image_size, config["backbone.filters"], config["backbone.pooling"], conv_impl
    )


def assemble(config: dict[str, Any], device: torch.device, execution: Execution | None = None) -> Assembly:
    """The learner of `config` on `device`, its initial parameters (drawn from config['seed']) and
    its Adam optimiser. `execution`: as resolved by execution_for unless given."""
    notes: list[str] = []
    if execution is None:
        execution, notes = execution_for(config, device)
    module, backbone_params = build_backbone(backbone_spec(config, execution.conv_impl), config["seed"])
    learner = MetaLearner(
        module.to(device),
        build_inner(config),
        build_outer(config),
        build_regularizer(config),
        execution.strategy,
        backbone_dtype(execution.precision),
    )
    initial = learner.init_parameters(backbone_params, config["seed"])
    params = {k: v.detach().to(device).requires_grad_(True) for k, v in initial.items()}
    optimizer = torch.optim.Adam(list(params.values()), lr=config["meta_lr"], capturable=execution.graph)
    return Assembly(config, execution, notes, learner, params, optimizer)
