"""FC100 (Oreshkin et al. 2018): CIFAR-100 split by superclass, 12 / 4 / 4 superclasses = 60 / 20 / 20 classes.

Layout under the data root: `cifar-100-python/` (or `cifar100/cifar-100-python/`) with the official
`train`, `test` and `meta` pickles, read with a restricted unpickler (cifar_pickle.py). Each class
pools its CIFAR-100 train and test images (500 + 100 = 600), train first, each in file order; the
classes of a split are its superclasses' fine classes, sorted by fine label id. 32x32 RGB as stored.
The superclass lists are those of torchmeta's `fc100/{train,val,test}.json`, embedded here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.data.cache import fingerprint, stat_entries
from benchmarks.data.cifar_pickle import int_list, load_pickle, names
from benchmarks.data.errors import DataError, DataMissing
from benchmarks.data.plan import SplitPlan
from benchmarks.data.split_data import SplitData

NAME = "fc100"
FOLDERS = ("cifar-100-python", "cifar100/cifar-100-python")
FILES = ("train", "test", "meta")
SUPERCLASSES = {
    "train": (
        "fish",
        "flowers",
        "food_containers",
        "fruit_and_vegetables",
        "household_electrical_devices",
        "household_furniture",
        "large_man-made_outdoor_things",
        "large_natural_outdoor_scenes",
        "reptiles",
        "trees",
        "vehicles_1",
        "vehicles_2",
    ),
    "val": ("large_carnivores", "large_omnivores_and_herbivores", "non-insect_invertebrates", "small_mammals"),
    "test": ("aquatic_mammals", "insects", "medium_mammals", "people"),
}
IMAGE_SIZE = [3, 32, 32]

INFO = {
    "sources": [
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (CIFAR-100, python version)",
        "https://github.com/ElementAI/TADAM (FC100 superclass split)",
    ],
    "layout": "cifar-100-python/ (or cifar100/cifar-100-python/) with the train, test and meta pickles",
    "splits": "FC100 superclasses 12 / 4 / 4 = 60 / 20 / 20 fine classes, train+test images pooled (600 per class)",
    "image_size": IMAGE_SIZE,
}


def find_folder(data_root: Path) -> Path:
    for rel in FOLDERS:
        folder = Path(data_root) / rel
        if folder.is_dir():
            missing = [n for n in FILES if not (folder / n).is_file()]
            if missing:
                raise DataMissing(
                    f"FC100: {', '.join(str(folder / n) for n in missing)} not found. Expected layout: "
                    f"{INFO['layout']}. Official source: {INFO['sources'][0]}"
                )
            return folder
    raise DataMissing(
        f"FC100: none of {', '.join(str(Path(data_root) / f) for f in FOLDERS)} exists. Expected layout: "
        f"{INFO['layout']}. Official source: {INFO['sources'][0]}"
    )


def read_cifar(folder: Path) -> dict[str, Any]:
    """Images [N, 3, 32, 32] uint8, fine and coarse labels [N] (train rows then test rows), label names."""
    meta_path = folder / "meta"
    meta = load_pickle(meta_path)
    for key in ("fine_label_names", "coarse_label_names"):
        if key not in meta:
            raise DataError(f"{meta_path}: no {key!r} entry; replace it with the official meta file")
    fine_names = names(meta["fine_label_names"], meta_path, "fine_label_names")
    coarse_names = names(meta["coarse_label_names"], meta_path, "coarse_label_names")
    parts = []
    for name in ("train", "test"):
        path = folder / name
        batch = load_pickle(path)
        for key in ("data", "fine_labels", "coarse_labels"):
            if key not in batch:
                raise DataError(f"{path}: no {key!r} entry; replace it with the official {name} file")
        data = batch["data"]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            found = f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}"
            raise DataError(f"{path}: 'data' must be a uint8 array [N, 3072], found {found}; replace the file")
        fine = int_list(batch["fine_labels"], path, "fine_labels", len(data))
        coarse = int_list(batch["coarse_labels"], path, "coarse_labels", len(data))
        if len(data) and (fine.min() < 0 or fine.max() >= len(fine_names) or coarse.max() >= len(coarse_names)):
            raise DataError(f"{path}: a label is outside the {len(fine_names)} / {len(coarse_names)} names of meta")
        parts.append((data.reshape(-1, 3, 32, 32), fine, coarse))
    return {
        "images": np.concatenate([p[0] for p in parts]),
        "fine": np.concatenate([p[1] for p in parts]),
        "coarse": np.concatenate([p[2] for p in parts]),
        "fine_names": fine_names,
        "coarse_names": coarse_names,
    }


def check_split_lists(superclasses: dict[str, tuple[str, ...]]) -> None:
    """Each superclass listed once over the three splits: one listed twice would make its fine classes
    two classes each with the same images, or put a class in two splits."""
    seen: dict[str, str] = {}
    for split, listed in superclasses.items():
        for i, name in enumerate(listed, start=1):
            if name in seen:
                raise DataError(
                    f"{__file__}: SUPERCLASSES[{split!r}] entry {i} ({name!r}) is already listed under "
                    f"{seen[name]!r}; each superclass belongs to one split once (torchmeta's fc100 json files)"
                )
            seen[name] = split


def select(cifar: dict[str, Any], split: str, folder: Path) -> list[tuple[int, np.ndarray]]:
    """(fine label, row indices) of each class of the split, sorted by fine label."""
    coarse_index = {n: i for i, n in enumerate(cifar["coarse_names"])}
    absent = [s for s in SUPERCLASSES[split] if s not in coarse_index]
    if absent:
        raise DataError(f"{folder / 'meta'}: no superclass {', '.join(absent)}; not the CIFAR-100 meta file")
    fine, coarse = cifar["fine"], cifar["coarse"]
    classes = []
    for superclass in SUPERCLASSES[split]:
        members = np.unique(fine[coarse == coarse_index[superclass]])
        if len(members) == 0:
            raise DataError(f"{folder}: superclass {superclass!r} of the FC100 {split} split has no images; replace")
        classes.extend(int(m) for m in members)
    out = []
    for label in sorted(classes):
        rows = np.flatnonzero(fine == label)
        if len(np.unique(coarse[rows])) != 1:
            raise DataError(f"{folder}: fine class {cifar['fine_names'][label]!r} has several superclasses; replace")
        out.append((label, rows))
    return out


def plan(data_root: Path, split: str) -> SplitPlan:
    check_split_lists(SUPERCLASSES)
    folder = find_folder(data_root)
    source_fp = fingerprint(
        stat_entries([folder / n for n in FILES], folder),
        {"dataset": NAME, "split": split, "superclasses": SUPERCLASSES[split]},
    )

    @cache
    def parsed() -> tuple[dict[str, Any], list[tuple[int, np.ndarray]]]:
        cifar = read_cifar(folder)
        return cifar, select(cifar, split, folder)

    def describe() -> dict[str, Any]:
        cifar, classes = parsed()
        images = int(sum(len(rows) for _, rows in classes))
        return {
            "dataset": NAME,
            "split": split,
            "source": str(folder),
            "format": "cifar-100-python pickles",
            "classes": len(classes),
            "images": images,
            "expected_images": images,
            "partial": False,
            "missing_images": 0,
            "image_size": IMAGE_SIZE,
            "superclasses": list(SUPERCLASSES[split]),
            "images_per_class": sorted({len(rows) for _, rows in classes}),
            "checksum": "not applicable (the tarball's md5 is not checked once extracted)",
        }

    def build(progress: bool) -> SplitData:
        cifar, classes = parsed()
        rows = np.concatenate([r for _, r in classes])
        labels = torch.cat([torch.full((len(r),), i, dtype=torch.int64) for i, (_, r) in enumerate(classes)])
        images = torch.from_numpy(np.ascontiguousarray(cifar["images"][rows]))
        return SplitData(NAME, split, images, labels, [cifar["fine_names"][c] for c, _ in classes], describe())

    return SplitPlan(NAME, split, source_fp, describe, build)
