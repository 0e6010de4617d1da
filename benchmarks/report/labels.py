"""Display names and the fixed orders in which datasets, settings, methods and variants appear."""

from __future__ import annotations

import re

from benchmarks.data.datasets import CLASSIFICATION
from benchmarks.data.datasets import DATASETS as DATASET_TABLE
from benchmarks.learner import registry

DATASETS = tuple(DATASET_TABLE)  # in the table's order
CLASSIFICATION_DATASETS = tuple(name for name, d in DATASET_TABLE.items() if d.task == CLASSIFICATION)
DATASET_NAMES = {name: d.display for name, d in DATASET_TABLE.items()}
METHODS = tuple(registry.METHODS)  # in the registry's order
METHOD_NAMES = {name: spec.display for name, spec in registry.METHODS.items()}
AMFS_FAMILY = ("i-amfs", "o-amfs", "amfs")
REGULARIZER_VARIANTS = ("default", "reg-none", "reg-mu-only", "reg-gamma-only")
REDUCED_MARK = "†"  # reduced-iteration runs (config.reduced)
PARTIAL_MARK = "‡"  # runs on partial data (data.<split>.partial)
CHECKSUM_MARK = "§"  # runs on data whose published checksum did not match (data.<split>.checksum "mismatch ...")
CACHE_ONLY_MARK = "¶"  # runs on a split served from its cache alone (data.<split>.cache "cache only ...")
_META_BATCH = re.compile(r"^meta-batch-(\d+)$")
_WAY_SHOT = re.compile(r"^(\d+)w(\d+)s$")


def marks(x: object) -> str:
    """The marks of a run, cell summary or paired comparison (anything with `reduced` and the
    `*_splits` data flags of report.runs.Run)."""
    return (
        (REDUCED_MARK if getattr(x, "reduced", False) else "")
        + (PARTIAL_MARK if getattr(x, "partial_splits", ()) else "")
        + (CHECKSUM_MARK if getattr(x, "checksum_splits", ()) else "")
        + (CACHE_ONLY_MARK if getattr(x, "cache_only_splits", ()) else "")
    )


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def method_name(method: str) -> str:
    """The registry's display name (read when called: a method registered at run time counts)."""
    spec = registry.METHODS.get(method)
    return spec.display if spec else method


def dataset_order(dataset: str) -> tuple[int, str]:
    return (DATASETS.index(dataset) if dataset in DATASETS else len(DATASETS), dataset)


def method_order(method: str) -> tuple[int, str]:
    """Registry order; a method not in the registry (an old record) after, by name."""
    names = list(registry.METHODS)
    return (names.index(method) if method in names else len(names), method)


def setting_order(setting: str) -> tuple[int, int, str]:
    """5w1s < 5w5s < 20w1s < 20w5s; anything else (e.g. the sinusoid's '10shot') after, by name."""
    match = _WAY_SHOT.match(setting)
    if match:
        return (int(match[1]), int(match[2]), setting)
    return (10**9, 0, setting)


def meta_batch_of_variant(variant: str) -> int | None:
    match = _META_BATCH.match(variant)
    return int(match[1]) if match else None


def variant_order(variant: str) -> tuple[int, int, str]:
    """default, the regularizer ablations, meta-batch sizes ascending, then the rest by name."""
    if variant in REGULARIZER_VARIANTS:
        return (REGULARIZER_VARIANTS.index(variant), 0, variant)
    size = meta_batch_of_variant(variant)
    if size is not None:
        return (len(REGULARIZER_VARIANTS), size, variant)
    return (len(REGULARIZER_VARIANTS) + 1, 0, variant)


def cell_label(dataset: str, setting: str) -> str:
    return f"{dataset_name(dataset)} {setting}"


def slug(text: str) -> str:
    """A file-name-safe lower-case form of text."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unnamed"
