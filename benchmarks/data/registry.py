"""The datasets by name: load a split (through the cache), and build the task source of a run."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from benchmarks.data import cache
from benchmarks.data.datasets import DATASETS, FILE_DATASETS, dataset_info
from benchmarks.data.episodes import EpisodeSampler
from benchmarks.data.errors import DataError
from benchmarks.data.plan import SplitPlan
from benchmarks.data.sinusoid import SinusoidTasks
from benchmarks.data.split_data import SPLITS, SplitData

LOADERS: dict[str, ModuleType] = {name: DATASETS[name].loader for name in FILE_DATASETS}  # type: ignore[misc]

DATASETS_INFO: dict[str, dict[str, Any]] = {name: d.source.INFO for name, d in DATASETS.items()}

_warned_partial: set[tuple[str, str]] = set()
_warned_cache_only: set[str] = set()


def source_folders(dataset: str) -> tuple[str, ...]:
    """The folders under a data root that hold a dataset's source files, in any accepted layout."""
    module = LOADERS[dataset]
    return getattr(module, "FOLDERS", None) or (module.FOLDER,)


def _check_names(dataset: str, split: str) -> None:
    if dataset not in LOADERS:
        raise DataError(f"unknown dataset {dataset!r}; datasets with files: {', '.join(LOADERS)} (and sinusoid)")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} of {dataset}; valid: {', '.join(SPLITS)}")


def plan_split(dataset: str, split: str, data_root: Path) -> SplitPlan:
    """Validate the layout and describe the split, without decoding anything."""
    _check_names(dataset, split)
    return LOADERS[dataset].plan(Path(data_root), split)


def load_split(dataset: str, split: str, data_root: Path, cache_dir: Path, progress: bool = True) -> SplitData:
    """One split in memory, from the cache when it matches the source files, else decoded and cached.

    With no source folder of the dataset under the data root at all (a compute node that was given
    only the caches), a cache file built earlier is served as it is, and its provenance says that it
    could not be checked against the source. A source that is there but broken is always an error."""
    path = cache.cache_path(Path(cache_dir), dataset, split)
    try:
        plan = plan_split(dataset, split, data_root)
    except DataError:
        if any((Path(data_root) / folder).exists() for folder in source_folders(dataset)):
            raise
        only = cache.load_unverified(path, dataset, split)
        if only is None:
            raise
        return _cache_only(*only, path)
    stored, how, digest = cache.load_or_build(path, plan.fingerprint, lambda: plan.build(progress))
    data = plan.finish(stored)
    data.provenance = {
        **data.provenance,
        "cache_file": str(path),
        "fingerprint": plan.fingerprint,
        "cache": how,
        "cache_sha256": digest,
        # a reused cache was read back and its content sha256 checked; a built one is what was just decoded
        "cache_check": "content sha256 verified" if how == "reused" else "decoded from the source files now",
    }
    _warn_if_partial(data.provenance, plan.fingerprint)
    return data


def _cache_only(stored: SplitData, digest: str, path: Path) -> SplitData:
    # what turns a cached split into the served one when only the cache is there (plan.finish otherwise)
    finish = getattr(LOADERS[stored.dataset], "finish_cached", None)
    data = stored if finish is None else finish(stored)
    note = "cache only: source files absent under the data root, cache not checked against them"
    data.provenance = {
        **data.provenance,
        "cache_file": str(path),
        "cache": note,
        "cache_sha256": digest,
        "cache_check": "content sha256 verified",  # intact as written; whether it matches the source is unknown
    }
    if str(path) not in _warned_cache_only:
        _warned_cache_only.add(str(path))
        warnings.warn(f"{stored.dataset} {stored.split}: served from {path} alone ({note})", stacklevel=3)
    return data


def _warn_if_partial(provenance: dict[str, Any], fingerprint: str) -> None:
    """One warning per partial split and source version in a process, however often it is loaded."""
    key = (f"{provenance['dataset']}/{provenance['split']}", fingerprint)
    if not provenance.get("partial") or key in _warned_partial:
        return
    _warned_partial.add(key)
    warnings.warn(
        f"{provenance['dataset']} {provenance['split']} is partial: {provenance['images']} of "
        f"{provenance['expected_images']} images present ({provenance['missing_images']} missing) under "
        f"{provenance['source']}; results on it are not comparable with the full split",
        stacklevel=3,
    )


def task_source(
    config: dict[str, Any],
    split: str,
    data_root: Path,
    cache_dir: Path,
    device: torch.device | str,
    progress: bool = True,
) -> EpisodeSampler | SinusoidTasks:
    """The episodes of a resolved run config for one split (train uses query_train, val/test query_test)."""
    n_query = config["query_train"] if split == "train" else config["query_test"]
    generator = dataset_info(config["dataset"]).generator
    if generator is not None:
        return generator(config["k_shot"], n_query, split, device)
    data = load_split(config["dataset"], split, data_root, cache_dir, progress)
    return EpisodeSampler(data, config["n_way"], config["k_shot"], n_query, device)
