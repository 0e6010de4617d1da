"""`python -m benchmarks data speed`: time episode sampling against learn2learn's (when installed) and
against a meta-iteration of the learner a run trains, to show that sampling is not what a run waits for."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.data import DataError, EpisodeSampler, load_split
from benchmarks.runs.build import assemble
from benchmarks.runs.config import resolve


def _median_ms(fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _learn2learn_sampler(images: torch.Tensor, labels: torch.Tensor, n_way: int, shots: int):
    """learn2learn's TaskDataset over the same device-resident split, or None when it is not installed."""
    try:
        import learn2learn as l2l
    except ImportError:
        return None
    dataset = torch.utils.data.TensorDataset(images, labels)
    labels_to_indices: dict[int, list[int]] = {}
    for i, label in enumerate(labels.cpu().tolist()):
        labels_to_indices.setdefault(label, []).append(i)
    meta = l2l.data.MetaDataset(dataset, labels_to_indices=labels_to_indices)
    transforms = [
        l2l.data.transforms.NWays(meta, n_way),
        l2l.data.transforms.KShots(meta, shots),
        l2l.data.transforms.LoadData(meta),
        l2l.data.transforms.RemapLabels(meta),
    ]
    return l2l.data.TaskDataset(meta, task_transforms=transforms, num_tasks=-1)


def _maml_iteration(device: torch.device, sampler: EpisodeSampler, n_tasks: int) -> tuple[Callable[[], Any], str]:
    """One meta-update of second-order MAML as an Omniglot run of the same way and shot trains it
    (runs.build.assemble, runs.step.MetaUpdate), on a fixed meta-batch of n_tasks tasks."""
    config = resolve(
        {"method": "maml", "dataset": "omniglot", "n_way": sampler.n_way, "k_shot": sampler.k_shot,
         "query_train": sampler.n_query, "meta_batch": n_tasks},
        "data speed",
    )  # fmt: skip
    run = assemble(config, device)
    update = run.meta_update(fallback=False)
    batch = sampler.tasks(seed=1, index=0, n_tasks=n_tasks)
    ex = run.execution
    what = (
        f"second-order MAML meta-iteration as a run trains it: Conv-4 ({config['backbone.filters']} filters, "
        f"{config['backbone.pooling']}), {config['inner.steps_train']} inner step of size {config['inner.step_size']}, "
        f"{sampler.n_way}-way {sampler.k_shot}-shot {sampler.n_query} queries, {n_tasks} tasks, strategy "
        f"{ex.strategy}{' in a CUDA graph' if ex.graph else ''}, meta-gradient + Adam step on a pre-sampled meta-batch"
    )
    return (lambda: update(batch)), what


def speed(data_root: Path, cache_dir: Path, device: str) -> int:
    """Time sampling 32 Omniglot 5-way 1-shot tasks (15 queries) against learn2learn and a MAML iteration."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"device {device!r} requested but CUDA is not available", file=sys.stderr)
        return 2
    try:
        data = load_split("omniglot", "train", data_root, cache_dir, progress=True)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n_way, k_shot, n_query, n_tasks, repeats, warmup = 5, 1, 15, 32, 50, 5
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {dev} ({name}); torch {torch.__version__}")
    sampler = EpisodeSampler(data, n_way, k_shot, n_query, dev)
    mb = sampler.images.numel() * sampler.images.element_size() / 2**20
    print(f"data: omniglot train, {data.n_classes} classes, {len(data.labels)} images, device-resident ({mb:.1f} MiB)")
    counter = iter(range(10**9))
    ours = _median_ms(lambda: sampler.tasks(0, next(counter), n_tasks), repeats, warmup, dev)
    setting = f"{n_tasks} tasks of {n_way}-way {k_shot}-shot with {n_query} queries per class"
    print(f"amfs-bench EpisodeSampler.tasks: {setting}: median {ours:.3f} ms over {repeats} meta-batches")

    peer = _learn2learn_sampler(sampler.images, data.labels.to(dev), n_way, k_shot + n_query)
    if peer is None:
        print("learn2learn: not importable here (peer absent); no comparison")
    else:

        def l2l_batch() -> None:
            for _ in range(n_tasks):
                x, _y = peer.sample()
                x.float().div_(255.0)

        theirs = _median_ms(l2l_batch, max(10, repeats // 5), 2, dev)
        print(
            f"learn2learn TaskDataset.sample x {n_tasks} (NWays, KShots(k+q), LoadData, RemapLabels; same split, "
            f"same device, uint8 -> float like ours): median {theirs:.3f} ms"
        )
        print(f"learn2learn / amfs-bench: {theirs / ours:.1f}x")

    maml_tasks = n_tasks if dev.type == "cuda" else 4
    step, what = _maml_iteration(dev, sampler, maml_tasks)
    maml = _median_ms(step, 5 if dev.type == "cpu" else 20, 1 if dev.type == "cpu" else 3, dev)
    scaled = maml * n_tasks / maml_tasks
    print(f"reference: {what}: median {maml:.1f} ms")
    if maml_tasks != n_tasks:
        print(f"  scaled linearly to {n_tasks} tasks: {scaled:.1f} ms (assumes time proportional to tasks)")
    print(f"sampling / meta-iteration, both for {n_tasks} tasks: {ours / scaled:.2%}")
    return 0
