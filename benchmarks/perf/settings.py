"""The settings `python -m benchmarks perf` times, and their synthetic inputs.

A setting is a set of config values (resolved with each method's defaults by benchmarks.runs.config, so
the hyper-parameters are the suite's own) plus the image shape. Inputs are random images of the
real shape with labels 0..N-1: timing and memory do not depend on what the pixels show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.data.datasets import dataset_info
from benchmarks.data.tasks import TaskBatch
from benchmarks.runs.config import resolve

# The protocol's meta-batches (32 Omniglot tasks; 4 and 2 mini-ImageNet tasks of 84x84 images) take
# seconds per meta-iteration on a 2-core CPU; the CPU run times these many tasks instead, and every
# table says so (the projections scale back by the meta-batch ratio).
CPU_META_BATCH = {"omniglot-5w1s": 4, "mini-imagenet-5w1s": 1, "mini-imagenet-5w5s": 1}


@dataclass(frozen=True)
class PerfSetting:
    """One timed setting: config values for benchmarks.runs.config.resolve and the input image shape
    (the dataset's, unless given: the tests time smaller images)."""

    key: str
    values: dict[str, Any] = field(hash=False)
    channels: int = 0
    image_size: int = 0
    note: str = ""

    def __post_init__(self) -> None:
        dataset = dataset_info(self.values.get("dataset", "omniglot"))
        object.__setattr__(self, "channels", self.channels or dataset.channels)
        object.__setattr__(self, "image_size", self.image_size or dataset.image_size)

    def config(self, method: str) -> dict[str, Any]:
        """The full run config of `method` in this setting (protocol < method defaults < values)."""
        return resolve({**self.values, "method": method}, f"perf setting {self.key}")

    def describe(self) -> dict[str, Any]:
        """What the reports show about the setting (from the resolved MAML config), and the config
        values that rebuild it (`values`, for the projections)."""
        c = self.config("maml")
        shape = f"{self.image_size}x{self.image_size}x{self.channels}"
        steps = "step" if c["inner.steps_train"] == 1 else "steps"
        text = (
            f"{dataset_info(c['dataset']).display} {shape}, Conv-4 {c['backbone.filters']} "
            f"{'strided' if c['backbone.pooling'] == 'strided' else 'max-pool'}, {c['n_way']}-way {c['k_shot']}-shot, "
            f"{c['query_train']} queries/class, {c['meta_batch']} tasks, {c['inner.steps_train']} inner {steps} "
            f"(step {c['inner.step_size']:g}), {c['inner.steps_test']} test steps"
        )
        return {
            "key": self.key,
            "description": text,
            "dataset": c["dataset"],
            "n_way": c["n_way"],
            "k_shot": c["k_shot"],
            "query": c["query_train"],
            "meta_batch": c["meta_batch"],
            "steps_train": c["inner.steps_train"],
            "steps_test": c["inner.steps_test"],
            "step_size": c["inner.step_size"],
            "filters": c["backbone.filters"],
            "pooling": c["backbone.pooling"],
            "channels": self.channels,
            "image_size": self.image_size,
            "note": self.note,
            "values": dict(sorted(self.values.items())),
        }


def parse_meta_batch(text: str | None) -> int | str | None:
    """`--meta-batch`: None (the device's default), "protocol", or a positive number of tasks."""
    if text is None or text == "protocol":
        return text
    try:
        tasks = int(text)
    except ValueError:
        tasks = 0
    if tasks < 1:
        raise ValueError(f"--meta-batch must be 'protocol' or a positive number of tasks, got {text!r}")
    return tasks


def default_settings(device: torch.device, meta_batch: int | str | None = None) -> list[PerfSetting]:
    """The three settings of the perf report. `meta_batch`: None for the protocol's meta-batches on
    a GPU and those of CPU_META_BATCH on the CPU; "protocol" for the protocol's on any device; a
    number for that many tasks in every setting."""
    protocol = [
        ("omniglot-5w1s", {"dataset": "omniglot", "n_way": 5, "k_shot": 1}),
        ("mini-imagenet-5w1s", {"dataset": "mini-imagenet", "n_way": 5, "k_shot": 1}),
        ("mini-imagenet-5w5s", {"dataset": "mini-imagenet", "n_way": 5, "k_shot": 5}),
    ]
    settings = []
    for key, values in protocol:
        setting = PerfSetting(key, values)
        tasks = setting.config("maml")["meta_batch"]
        if meta_batch is None and device.type != "cuda":
            chosen, why = CPU_META_BATCH[key], " for the CPU"
        elif isinstance(meta_batch, int):
            chosen, why = meta_batch, " by --meta-batch"
        else:
            chosen, why = tasks, ""
        if chosen != tasks:
            change = "reduced" if chosen < tasks else "raised"
            note = f"meta-batch {change} from {tasks} to {chosen} task{'s' if chosen > 1 else ''}{why}"
            setting = PerfSetting(key, {**values, "meta_batch": chosen}, setting.channels, setting.image_size, note)
        settings.append(setting)
    return settings


def select_settings(settings: list[PerfSetting], keys: str | None) -> list[PerfSetting]:
    """The settings named in a comma-separated list (all when None), in the list's own order."""
    if not keys:
        return settings
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    known = {s.key: s for s in settings}
    unknown = [k for k in wanted if k not in known]
    if unknown:
        raise ValueError(f"--settings: unknown setting(s) {unknown}; valid: {', '.join(known)}")
    return [known[k] for k in wanted]


def synthetic_batch(setting: PerfSetting, tasks: int, query: int, seed: int, device: torch.device) -> TaskBatch:
    """`tasks` tasks of random images in [0, 1) of the setting's shape, labels 0..N-1, K support and
    `query` query images per class."""
    c = setting.config("maml")
    n, k = c["n_way"], c["k_shot"]
    generator = torch.Generator().manual_seed(seed)
    image = (setting.channels, setting.image_size, setting.image_size)
    support_x = torch.rand(tasks, n * k, *image, generator=generator)
    query_x = torch.rand(tasks, n * query, *image, generator=generator)
    support_y = torch.arange(n).repeat_interleave(k).expand(tasks, -1).contiguous()
    query_y = torch.arange(n).repeat_interleave(query).expand(tasks, -1).contiguous()
    return TaskBatch(support_x, support_y, query_x, query_y).to(device)
