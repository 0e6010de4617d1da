"""The preprocessed cache: one file per (dataset, split), `<cache_dir>/<dataset>-<split>-v<VERSION>.pt`.

A cache file holds the split's uint8 images, labels, class names and provenance, plus the source
fingerprint it was built from. The fingerprint is cheap to recompute (relative path, size and
modification time of every source file, and the loader's settings, hashed), so a cache is reused
while the source is unchanged and rebuilt as soon as a file is added, removed or modified. Files are
written atomically: a reader sees the old cache or the complete new one, never a torn file.

The fingerprint says which source a cache claims to come from, not that its tensors are intact: each
file also carries the sha256 of its content (common/checked.py), verified on every load. A file that
fails it is rebuilt when the source files are there, and refused (DataError naming it) when the cache
is all there is; the provenance of a served split records the verified sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.common.checked import ChecksumError, load_checked, save_checked
from benchmarks.data.errors import DataError
from benchmarks.data.split_data import SplitData

VERSION = 2  # 2: the content sha256 of common/checked.py (version 1 files are rebuilt)
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
    """A cache file's header (dataset, split, fingerprint, provenance), its content verified
    (memory-mapped); None if absent, unreadable or corrupt."""
    if not path.exists():
        return None
    try:
        stored, _ = load_checked(path, mmap=True)
    except ChecksumError:
        return None
    if not isinstance(stored, dict):
        return None
    return {k: stored.get(k) for k in ("dataset", "split", "fingerprint", "provenance")}


def status(path: Path, expected_fingerprint: str) -> str:
    """'built' (up to date, content verified), 'stale' (built from other source files, or of an older
    format), 'corrupt' (unreadable, or its content does not match its sha256) or 'absent'. Reads the
    whole file (memory-mapped) to verify it."""
    if not path.exists():
        return "absent"
    try:
        stored, _ = load_checked(path, mmap=True)
    except ChecksumError:
        return "corrupt"
    if not isinstance(stored, dict) or stored.get("version") != VERSION:
        return "stale"
    return "built" if stored.get("fingerprint") == expected_fingerprint else "stale"


def save(path: Path, data: SplitData, source_fingerprint: str) -> str:
    """Write the cache file of a split; returns the sha256 of its content."""
    payload = {
        "version": VERSION,
        "fingerprint": source_fingerprint,
        "dataset": data.dataset,
        "split": data.split,
        "images": data.images.contiguous(),
        "labels": data.labels,
        "class_names": list(data.class_names),
        "provenance": data.provenance,
    }
    try:
        return save_checked(path, payload)
    except OSError as e:
        raise DataError(
            f"cannot write the cache file {path} ({e}); choose a writable folder with --cache-dir or $AMFS_CACHE_DIR"
        ) from e


def load(path: Path, expected_fingerprint: str) -> tuple[SplitData, str] | None:
    """(the cached split, its content sha256) if the file exists, verifies and matches the fingerprint; else
    None (a corrupt file is logged and left to be rebuilt)."""
    try:
        found = _read(path)
    except ChecksumError as e:
        log.warning("%s; rebuilding it from the source files", e)
        return None
    if found is None or found[0].get("fingerprint") != expected_fingerprint:
        return None
    return _split_data(found[0]), found[1]


def load_unverified(path: Path, dataset: str, split: str) -> tuple[SplitData, str] | None:
    """(the cached split of `dataset`/`split`, its content sha256) without a source to check it against (its
    provenance keeps the fingerprint it was built from); None if absent or of another split. Its content
    checksum is still verified: a corrupt file cannot be rebuilt without the source, so it is a DataError."""
    try:
        found = _read(path)
    except ChecksumError as e:
        raise DataError(
            f"{e}. The source files are absent under the data root, so it cannot be rebuilt here: delete it and "
            "rebuild it where the source files are (`python -m benchmarks data prepare`)"
        ) from e
    if found is None:
        return None
    stored, digest = found
    if stored.get("dataset") != dataset or stored.get("split") != split:
        return None
    data = _split_data(stored)
    data.provenance["fingerprint"] = stored.get("fingerprint")
    return data, digest


def _read(path: Path) -> tuple[dict, str] | None:
    """(stored dict, content sha256) of a cache file of this VERSION; None if absent or of another version;
    ChecksumError if unreadable or tampered with."""
    if not path.exists():
        return None
    stored, digest = load_checked(path)
    if not isinstance(stored, dict) or stored.get("version") != VERSION:
        return None
    return stored, digest


def _split_data(stored: dict) -> SplitData:
    try:
        return SplitData(
            dataset=stored["dataset"],
            split=stored["split"],
            images=stored["images"],
            labels=stored["labels"],
            class_names=list(stored["class_names"]),
            provenance=dict(stored["provenance"]),
        )
    except (KeyError, TypeError, ValueError) as e:  # verified, yet not a cache this code wrote
        raise DataError(f"a cache file of {stored.get('dataset')} {stored.get('split')} is malformed ({e})") from e


def load_or_build(path: Path, source_fingerprint: str, build: Callable[[], SplitData]) -> tuple[SplitData, str, str]:
    """(split, 'reused' | 'built', content sha256): the cache when it verifies and matches the source, else a
    fresh build written to it."""
    cached = load(path, source_fingerprint)
    if cached is not None:
        return cached[0], "reused", cached[1]
    data = build()
    digest = save(path, data, source_fingerprint)
    return data, "built", digest
