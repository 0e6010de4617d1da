"""`python -m benchmarks data check | prepare` (`data speed` times a learner too: perf/data_speed.py).

check:   a table of every dataset and split: found / partial / missing, classes, images, checksums,
         cache state (built, stale, corrupt: content sha256 mismatch, absent); for a missing dataset
         its official source and expected layout. Always exit 0.
prepare: optionally download Omniglot's official zips, then build every cache of the datasets found.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchmarks.common import tables
from benchmarks.data import cache
from benchmarks.data.datasets import DATASETS
from benchmarks.data.errors import DataError, DataMissing
from benchmarks.data.registry import DATASETS_INFO, LOADERS, load_split, plan_split
from benchmarks.data.split_data import SPLITS

GENERATED = tuple(name for name, d in DATASETS.items() if d.generator is not None)


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
                cached = _cache_only_row(dataset, split, cache_dir) if isinstance(e, DataMissing) else None
                if cached is not None:  # runs are served from the cache alone (data.registry.load_split)
                    rows.append(cached)
                    continue
                rows.append(_empty_row(dataset, split, "missing" if isinstance(e, DataMissing) else "error"))
                notes.setdefault(str(e), []).append(f"{dataset} {split}")
    for name in GENERATED:
        rows.append({**_empty_row(name, "all", "generated"), "cache": "not needed"})
    print(tables.text(rows))
    for message, where in notes.items():
        print(f"\n{', '.join(where)}:\n  {message}")
    for row in rows:
        if row["cache"] == "corrupt":
            path = cache.cache_path(cache_dir, row["dataset"], row["split"])
            print(
                f"\n{row['dataset']} {row['split']}:\n  {path}: unreadable, or its content does not match its "
                "sha256 (modified or corrupted after it was written); it is rebuilt by the next "
                "`python -m benchmarks data prepare` or run"
            )
    return 0


def _cache_only_row(dataset: str, split: str, cache_dir: Path) -> dict[str, Any] | None:
    """The row of a split whose source files are absent but whose cache is there: runs use the cache
    alone (and record it); None when there is no usable cache either."""
    path = cache.cache_path(cache_dir, dataset, split)
    header = cache.peek(path)
    if header is None or (header["dataset"], header["split"]) != (dataset, split):
        return None
    p = header["provenance"] or {}
    return {**_empty_row(dataset, split, "cache only"), "classes": p.get("classes", "-"),
            "images": p.get("images", "-"), "cache": "served as is (source absent)"}  # fmt: skip


def _empty_row(dataset: str, split: str, status: str) -> dict[str, Any]:
    return {"dataset": dataset, "split": split, "status": status, "classes": "-", "images": "-", "checksum": "-",
            "cache": "-"}  # fmt: skip


def prepare(data_root: Path, cache_dir: Path, dataset: str | None, download: bool) -> int:
    """Download Omniglot if asked and absent, then build the cache of every split of every dataset found."""
    if dataset in GENERATED:
        print(f"{dataset}: generated, nothing to prepare")
        return 0
    if dataset is not None and dataset not in LOADERS:
        print(f"unknown dataset {dataset!r}; valid: {', '.join(LOADERS)}", file=sys.stderr)
        return 2
    datasets = [dataset] if dataset else list(LOADERS)
    rc = 0
    for name in datasets if download else ():
        fetch = getattr(LOADERS[name], "download", None)  # only Omniglot's official files can be fetched
        if fetch is None:
            print(f"{name}: no automatic download; get it from {'; '.join(DATASETS_INFO[name]['sources'])}")
            continue
        try:
            for part, state in fetch(data_root).items():
                print(f"{name} {part}: {state}")
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            rc = 1
    for name in datasets:
        for split in SPLITS:
            try:
                data = load_split(name, split, data_root, cache_dir, progress=sys.stderr.isatty())
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
