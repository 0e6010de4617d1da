"""Checked downloads: a file is fetched to a temporary name, its md5 verified, then renamed into place.

An existing file with the right checksum is never downloaded again; an existing file with the wrong
checksum, or a download with the wrong checksum, is an error that overwrites nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

from tqdm import tqdm

from benchmarks.data.errors import DataError

BLOCK = 1 << 20


def md5_file(path: Path) -> str:
    """md5 of a file, remembered while its size and modification time are unchanged."""
    st = Path(path).stat()
    return _md5_cached(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _md5_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def fetch_verified(url: str, target: Path, md5: str, progress: bool = True) -> str:
    """Make `target` a verified copy of `url`: 'present' if it already was, 'downloaded' if fetched now."""
    target = Path(target)
    if target.exists():
        found = md5_file(target)
        if found != md5:
            raise DataError(
                f"{target} exists but its md5 is {found}, expected {md5} (corrupt or a different file); "
                f"delete it and download again from {url}"
            )
        return "present"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as e:
        raise DataError(f"cannot write into {target.parent} ({e}); make it writable or download {url} by hand") from e
    h = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
                while block := response.read(BLOCK):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        if h.hexdigest() != md5:
            raise DataError(
                f"download of {url} has md5 {h.hexdigest()}, expected {md5}; nothing was written to {target}. "
                "Retry later or download the file by hand and check its md5"
            )
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"cannot download {url} ({e}); download it by hand to {target}") from e
    finally:
        Path(tmp).unlink(missing_ok=True)
    return "downloaded"
