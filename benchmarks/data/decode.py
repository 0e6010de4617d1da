"""Decode image files (plain files or zip members) into one uint8 array at the protocol size.

Decoding tens of thousands of small images is the slow part of building a cache, so it runs in a
process pool (one worker per available core, at most 8) over chunks of files, with a progress bar.
Workers are forked: spawned or fork-server workers would re-import the caller's main module, which
breaks any script without a `__main__` guard (and `python -m benchmarks`), and would import torch
again in every worker. Forking a process that runs torch threads is safe here because the workers
only run PIL, numpy and zipfile code, never torch.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmarks.data.errors import DataError

CHUNK = 256
SERIAL_BELOW = 2 * CHUNK  # small jobs (test fixtures) are not worth a pool
# The most a zip member may decompress to. An Omniglot PNG is about 1 kB; the cap keeps a crafted member
# (gigabytes of zeros in a few kilobytes) from filling memory before the decoder refuses it.
MAX_MEMBER_BYTES = 10 * 2**20


@dataclass(frozen=True)
class ImageRef:
    """An image file: a path, or a member of a zip archive (`container` is the zip's path)."""

    path: str
    container: str | None = None

    def __str__(self) -> str:
        return f"{self.container}:{self.path}" if self.container else self.path


@dataclass(frozen=True)
class DecodeSpec:
    """How a file becomes an array.

    mode: PIL mode, "L" (1 channel) or "RGB" (3 channels).
    resize: "lanczos" resizes to size x size with PIL LANCZOS; "resize_center_crop" resizes to
    1.15 * size square (bilinear) and crops the centre size x size (Closer Look's evaluation transform).
    invert: 255 - value (Omniglot: strokes bright on a dark background).
    """

    size: int
    mode: str = "RGB"
    resize: str = "lanczos"
    invert: bool = False

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


_open_zips: dict[str, zipfile.ZipFile] = {}


def _read_bytes(ref: ImageRef) -> bytes:
    if ref.container is None:
        with open(ref.path, "rb") as f:
            return f.read()
    archive = _open_zips.get(ref.container)
    if archive is None:
        archive = _open_zips[ref.container] = zipfile.ZipFile(ref.container)
    # the declared size can lie: read at most one byte past the cap, whatever the header says
    with archive.open(ref.path) as member:
        data = member.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise DataError(f"{ref}: decompresses to more than {MAX_MEMBER_BYTES} bytes; not an image of the dataset")
    return data


def decode_one(data: bytes, spec: DecodeSpec) -> np.ndarray:
    """Bytes of one image file -> uint8 [C, size, size]."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert(spec.mode)
        if spec.resize == "resize_center_crop":
            big = int(spec.size * 1.15)
            im = im.resize((big, big), Image.Resampling.BILINEAR)
            left = (big - spec.size) // 2
            im = im.crop((left, left, left + spec.size, left + spec.size))
        elif im.size != (spec.size, spec.size):
            im = im.resize((spec.size, spec.size), Image.Resampling.LANCZOS)
        array = np.asarray(im, dtype=np.uint8)
    if spec.invert:
        array = 255 - array
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _decode_chunk(job: tuple[int, Sequence[ImageRef], DecodeSpec]) -> tuple[int, np.ndarray | None, str | None]:
    """(start, images) or (start, None, error text naming the file)."""
    start, refs, spec = job
    out = np.empty((len(refs), spec.channels, spec.size, spec.size), dtype=np.uint8)
    for i, ref in enumerate(refs):
        try:
            out[i] = decode_one(_read_bytes(ref), spec)
        except Exception as e:  # any decoder failure is reported with the file it came from
            return start, None, f"{ref}: cannot decode image ({type(e).__name__}: {e})"
    return start, out, None


def decode_images(
    refs: Sequence[ImageRef],
    spec: DecodeSpec,
    progress: bool = True,
    desc: str = "decoding",
    workers: int | None = None,
) -> np.ndarray:
    """Every ref decoded, in order, as uint8 [N, C, size, size]. A file that fails -> DataError naming it."""
    out = np.empty((len(refs), spec.channels, spec.size, spec.size), dtype=np.uint8)
    jobs = [(s, refs[s : s + CHUNK], spec) for s in range(0, len(refs), CHUNK)]
    workers = default_workers() if workers is None else workers
    bar = tqdm(total=len(refs), desc=desc, unit="img", disable=not progress, leave=False)
    try:
        if workers <= 1 or len(refs) < SERIAL_BELOW:
            results = map(_decode_chunk, jobs)
            _collect(results, out, bar)
        else:
            with warnings.catch_warnings():
                # Python >= 3.12 warns about fork() in a threaded process; see the module docstring for why
                # these workers are safe
                warnings.filterwarnings(
                    "ignore", message=".*use of fork\\(\\) may lead to deadlocks", category=DeprecationWarning
                )
                pool = multiprocessing.get_context("fork").Pool(workers, initializer=_default_signals)
            with pool:
                _collect(pool.imap_unordered(_decode_chunk, jobs), out, bar)
    finally:
        bar.close()
        _close_zips()
    return out


def _default_signals() -> None:
    """In a forked worker: the default actions for the signals a run may have taken over (a run stops
    cleanly on TERM and USR2: runs/interrupt.py). Inherited, its handler would only set a flag, and
    the pool's TERM on closing would leave the worker alive and the pool waiting for it for ever."""
    for name in ("SIGTERM", "SIGUSR2"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


def _close_zips() -> None:
    for archive in _open_zips.values():
        archive.close()
    _open_zips.clear()


def _collect(results, out: np.ndarray, bar: tqdm) -> None:
    for start, images, error in results:
        if error is not None:
            raise DataError(f"{error}. The file is corrupt or not an image: replace it from the official source.")
        out[start : start + len(images)] = images
        bar.update(len(images))
