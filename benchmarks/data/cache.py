"""The preprocessed cache: one file per (dataset, split), `<cache_dir>/<dataset>-<split>-v<VERSION>.pt`.

A cache file holds the split's uint8 images, labels, class names and provenance, plus the source
fingerprint it was built from. The fingerprint is cheap to recompute (relative path, size and
modification time of every source file, and the loader's settings, hashed), so a cache is reused
while the source is unchanged and rebuilt as soon as a file is added, removed or modified. Files are
written atomically: a reader sees the old cache or the complete new one, never a torn file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.files import atomic_write_bytes
from benchmarks.data.errors import DataError
from benchmarks.data.split_data import SplitData

VERSION = 1
log = logging.getLogger(__name__)


def cache_path(cache_dir: Path, dataset: str, split: str) -> Path:
    return Path(cache_dir) / f"{dataset}-{split}-v{VERSION}.pt"


def stat_entries(paths: Iterable[str | Path], root: Path) -> list[tuple[str, int, int]]:
    """(path relative to root, size, mtime in ns) of each file under root, sorted by path.

    Plain string operations rather than pathlib: this runs over tens of thousands of files on every load."""
    prefix = os.path.join(os.fspath(root), "")
    entries = []
    for p in paths:
        name = os.fspath(p)
        if not name.startswith(prefix):
            raise ValueError(f"{name} is not under {root}")
        st = os.stat(name)
        entries.append((name[len(prefix) :].replace(os.sep, "/"), st.st_size, st.st_mtime_ns))
    return sorted(entries)


def fingerprint(entries: Iterable[tuple[str, int, int]], settings: dict[str, Any]) -> str:
    """sha256 over the loader settings and the sorted (path, size, mtime) entries."""
    h = hashlib.sha256()
    h.update(json.dumps({"cache_version": VERSION, **settings}, sort_keys=True).encode())
    for rel, size, mtime in sorted(entries):
        h.update(f"\n{rel}\t{size}\t{mtime}".encode())
    return h.hexdigest()


def peek(path: Path) -> dict[str, Any] | None:
    """A cache file's header (dataset, split, fingerprint, provenance) without reading its images
    (memory-mapped); None if absent or unreadable."""
    if not path.exists():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a torn or foreign file is treated as stale, never trusted
        return None
    if not isinstance(stored, dict):
        return None
    return {k: stored.get(k) for k in ("dataset", "split", "fingerprint", "provenance")}


def read_fingerprint(path: Path) -> str | None:
    """The fingerprint a cache file was built from, without reading its images; None if unreadable."""
    header = peek(path)
    return None if header is None else header["fingerprint"]


def status(path: Path, expected_fingerprint: str) -> str:
    """'built' (up to date), 'stale' (built from other source files, or unreadable) or 'absent'."""
    if not path.exists():
        return "absent"
    return "built" if read_fingerprint(path) == expected_fingerprint else "stale"


def save(path: Path, data: SplitData, source_fingerprint: str) -> None:
    buffer = io.BytesIO()
    torch.save(
        {
            "version": VERSION,
            "fingerprint": source_fingerprint,
            "dataset": data.dataset,
            "split": data.split,
            "images": data.images.contiguous(),
            "labels": data.labels,
            "class_names": list(data.class_names),
            "provenance": data.provenance,
        },
        buffer,
    )
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as e:
        raise DataError(
            f"cannot write the cache file {path} ({e}); choose a writable folder with --cache-dir or $AMFS_CACHE_DIR"
        ) from e


def load(path: Path, expected_fingerprint: str) -> SplitData | None:
    """The cached split if the file exists, is readable and matches the fingerprint; else None."""
    stored = _read(path)
    if stored is None or stored.get("fingerprint") != expected_fingerprint:
        return None
    return _split_data(stored)


def load_unverified(path: Path, dataset: str, split: str) -> SplitData | None:
    """The cached split of `dataset`/`split` without a source to check it against (its provenance
    keeps the fingerprint it was built from); None if absent, unreadable or of another split."""
    stored = _read(path)
    if stored is None or stored.get("dataset") != dataset or stored.get("split") != split:
        return None
    data = _split_data(stored)
    data.provenance["fingerprint"] = stored.get("fingerprint")
    return data


def _read(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file is rebuilt, never trusted
        log.warning("%s: unreadable cache file (%s); rebuilding it", path, e)
        return None
    if not isinstance(stored, dict) or stored.get("version") != VERSION:
        return None
    return stored


def _split_data(stored: dict) -> SplitData:
    return SplitData(
        dataset=stored["dataset"],
        split=stored["split"],
        images=stored["images"],
        labels=stored["labels"],
        class_names=list(stored["class_names"]),
        provenance=dict(stored["provenance"]),
    )


def load_or_build(path: Path, source_fingerprint: str, build: Callable[[], SplitData]) -> tuple[SplitData, str]:
    """(split, 'reused' | 'built'): the cache when it matches the source, else a fresh build written to it."""
    cached = load(path, source_fingerprint)
    if cached is not None:
        return cached, "reused"
    data = build()
    save(path, data, source_fingerprint)
    return data, "built"
