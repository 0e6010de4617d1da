"""A split plan: what a split will be built from, known before any image is decoded.

Each loader turns a data root into a plan (validating the layout on the way): the source
fingerprint, the provenance of the split as it will be served, and how to build it. `load_split`
then reuses the cache or calls `build`; `data check` reads only the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.data.decode import DecodeSpec, ImageRef, decode_images
from benchmarks.data.errors import DataError
from benchmarks.data.split_data import SplitData


def _unchanged(data: SplitData) -> SplitData:
    return data


@dataclass
class SplitPlan:
    """`describe()` gives the provenance of the split as served (after `finish`), without the cache
    fields; `build(progress)` decodes what the cache stores; `finish` turns the cached split into the
    served one (Omniglot adds its rotation classes there). `describe` is a function because for some
    formats (CIFAR pickles) counting the images means reading the files, which a cache hit avoids."""

    dataset: str
    split: str
    fingerprint: str
    describe: Callable[[], dict[str, Any]]
    build: Callable[[bool], SplitData]
    finish: Callable[[SplitData], SplitData] = field(default=_unchanged)


@dataclass
class ClassFiles:
    """One class of an image-folder dataset: its name, the files present, how many the split lists."""

    name: str
    refs: list[ImageRef]
    expected: int
    where: str  # the file or folder that defines the class, for messages


def check_not_empty(classes: list[ClassFiles], source: Path, fix: str) -> None:
    for c in classes:
        if not c.refs:
            raise DataError(f"{c.where}: class {c.name!r} has no images present under {source}; {fix}")


def files_provenance(classes: list[ClassFiles], source: Path, fmt: str, spec: DecodeSpec) -> dict[str, Any]:
    """Counts of present and expected images, and which ones are missing (partial split)."""
    present = sum(len(c.refs) for c in classes)
    expected = sum(c.expected for c in classes)
    return {
        "source": str(source),
        "format": fmt,
        "classes": len(classes),
        "images": present,
        "expected_images": expected,
        "partial": present < expected,
        "missing_images": expected - present,
        "image_size": [spec.channels, spec.size, spec.size],
    }


def file_builder(dataset: str, split: str, classes: list[ClassFiles], spec: DecodeSpec, provenance: dict[str, Any]):
    """A `build(progress)` that decodes every present file of every class."""

    def build(progress: bool) -> SplitData:
        refs = [r for c in classes for r in c.refs]
        labels = torch.tensor([i for i, c in enumerate(classes) for _ in c.refs], dtype=torch.int64)
        images = decode_images(refs, spec, progress=progress, desc=f"{dataset} {split}")
        return SplitData(dataset, split, torch.from_numpy(images), labels, [c.name for c in classes], dict(provenance))

    return build
