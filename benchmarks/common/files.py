"""Atomic file writes: a reader sees the old file or the complete new one, never a torn file.

A write goes to a temporary file beside the target, named `.<name>.<8 random characters>.tmp`, which
is fsynced and renamed over the target. A process killed mid-write leaves that temporary file behind;
`remove_orphan_temporaries` deletes such files once they are old enough that no live writer can own
them. Files are created with the mode the process umask gives (0644 under the usual umask 022), so
collaborators sharing a results folder can read them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
# what tempfile.mkstemp(prefix=".<name>.", suffix=".tmp") creates: 8 characters of [a-z0-9_] between
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
ORPHAN_AGE_S = 60.0  # a temporary file older than this has no live writer: writes take milliseconds


def _umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path so that readers see either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        # mkstemp creates 0600; a results or reports folder is shared, so use the mode open() would give
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())


def is_temporary(name: str) -> bool:
    """Whether a file name is one of atomic_write_bytes' temporary files."""
    return bool(_TEMPORARY.fullmatch(name))


def remove_orphan_temporaries(folder: Path, older_than_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Delete the temporary files of interrupted writes in folder (not below it) that are older than
    older_than_s; returns what was deleted. Nothing else is touched."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for entry in os.scandir(folder):
        if not is_temporary(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > older_than_s:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:  # removed meanwhile by someone else
            continue
    return removed


# letters, digits, '-', '_' and '.', not starting with '.': a name that stays one folder (no '/', no '..')
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def is_plain_name(name: str) -> bool:
    """Whether name can be used as one path component that stays inside its parent folder."""
    return bool(_PLAIN_NAME.fullmatch(name)) and len(name) <= 200
