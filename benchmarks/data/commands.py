"""`python -m benchmarks data check | prepare | speed`.

check:   a table of every dataset and split: found / partial / missing, classes, images, checksums,
         cache state; for a missing dataset its official source and expected layout. Always exit 0.
prepare: optionally download Omniglot's official zips, then build every cache of the datasets found.
speed:   time episode sampling against learn2learn (when installed) and against a MAML meta-iteration.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.data import cache, omniglot
from benchmarks.data.episodes import EpisodeSampler
from benchmarks.data.errors import DataError, DataMissing
from benchmarks.data.registry import DATASETS_INFO, LOADERS, load_split, plan_split
from benchmarks.data.split_data import SPLITS


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def _checksum_text(checksum: Any) -> str:
    if isinstance(checksum, dict):
        states = {v.split(" ")[0] for v in checksum.values()}
        if states == {"not"}:
            return "n/a (folders)"
        return ", ".join(f"{part.removeprefix('images_')}.zip {v.split(' ')[0]}" for part, v in checksum.items())
    return "n/a" if str(checksum).startswith("not applicable") else str(checksum)


def _split_row(dataset: str, split: str, data_root: Path, cache_dir: Path) -> dict[str, Any]:
    plan = plan_split(dataset, split, data_root)
    p = plan.describe()
    images = f"{p['images']}" if not p["partial"] else f"{p['images']} of {p['expected_images']}"
    return {
        "dataset": dataset,
        "split": split,
        "status": "partial" if p["partial"] else "found",
        "classes": p["classes"],
        "images": images,
        "checksum": _checksum_text(p.get("checksum")),
        "cache": cache.status(cache.cache_path(cache_dir, dataset, split), plan.fingerprint),
    }


def check(data_root: Path, cache_dir: Path) -> int:
    """Print the state of every dataset under data_root and its caches under cache_dir."""
    print(f"data root: {data_root}\ncache dir: {cache_dir}\n")
    rows: list[dict[str, Any]] = []
    notes: dict[str, list[str]] = {}  # message -> "dataset split" labels, so a shared cause prints once
    for dataset in LOADERS:
        for split in SPLITS:
            try:
                rows.append(_split_row(dataset, split, data_root, cache_dir))
            except DataError as e:
                rows.append(_empty_row(dataset, split, "missing" if isinstance(e, DataMissing) else "error"))
                notes.setdefault(str(e), []).append(f"{dataset} {split}")
    rows.append({**_empty_row("sinusoid", "all", "generated"), "cache": "not needed"})
    print(format_table(rows))
    for message, where in notes.items():
        print(f"\n{', '.join(where)}:\n  {message}")
    return 0


def _empty_row(dataset: str, split: str, status: str) -> dict[str, Any]:
    return {"dataset": dataset, "split": split, "status": status, "classes": "-", "images": "-", "checksum": "-",
            "cache": "-"}  # fmt: skip


def prepare(data_root: Path, cache_dir: Path, dataset: str | None, download: bool) -> int:
    """Download Omniglot if asked and absent, then build the cache of every split of every dataset found."""
    if dataset == "sinusoid":
        print("sinusoid: generated, nothing to prepare")
        return 0
    if dataset is not None and dataset not in LOADERS:
        print(f"unknown dataset {dataset!r}; valid: {', '.join(LOADERS)}", file=sys.stderr)
        return 2
    datasets = [dataset] if dataset else list(LOADERS)
    rc = 0
    if download and "omniglot" in datasets:
        try:
            for part, state in omniglot.download(data_root).items():
                print(f"omniglot {part}: {state}")
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            rc = 1
    if download:
        for name in datasets:
            if name != "omniglot":
                print(f"{name}: no automatic download; get it from {'; '.join(DATASETS_INFO[name]['sources'])}")
    for name in datasets:
        for split in SPLITS:
            try:
                data = load_split(name, split, data_root, cache_dir, progress=True)
            except DataMissing as e:
                print(f"{name}: missing ({e})", file=sys.stderr if dataset else sys.stdout)
                rc = 1 if dataset else rc
                break
            except DataError as e:
                print(f"error: {e}", file=sys.stderr)
                rc = 1
                break
            p = data.provenance
            partial = f" (partial: {p['missing_images']} of {p['expected_images']} missing)" if p["partial"] else ""
            print(f"{name} {split}: {p['classes']} classes, {p['images']} images{partial}; cache {p['cache']}")
    return rc


# --- speed ------------------------------------------------------------------------------------


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
    """One second-order MAML meta-iteration on a fixed meta-batch (meta-gradient + Adam step)."""
    from baselines import GradientInner, MeanOuter
    from benchmarks.learner.backbones import BackboneSpec, build_backbone
    from benchmarks.learner.meta_learner import MetaLearner, default_strategy

    backbone, backbone_params = build_backbone(BackboneSpec("conv4", 1, 28, 64, "strided"), seed=0)
    backbone.to(device)
    inner = GradientInner(n_outputs=sampler.n_way, steps_train=1, step_size=0.4, first_order=False)
    strategy = default_strategy(device)
    learner = MetaLearner(backbone, inner, MeanOuter(), strategy=strategy)
    params = {k: v.to(device) for k, v in learner.init_parameters(backbone_params, seed=0).items()}
    params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    optimizer = torch.optim.Adam(params.values(), lr=1e-3)
    batch = sampler.tasks(seed=1, index=0, n_tasks=n_tasks)

    def step() -> None:
        result = learner.meta_gradients(params, batch)
        for k, p in params.items():
            p.grad = result.gradients[k]
        optimizer.step()

    what = (
        f"second-order MAML meta-iteration: Conv-4 (64 filters, strided), 1 inner step of size 0.4, "
        f"{sampler.n_way}-way {sampler.k_shot}-shot {sampler.n_query} queries, {n_tasks} tasks, "
        f"strategy {strategy}, meta-gradient + Adam step on a pre-sampled meta-batch"
    )
    return step, what


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
