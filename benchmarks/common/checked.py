"""Tensor files that carry a checksum of their content and load without running code.

A checked file is `torch.save({"format", "sha256", "payload"})`, where the payload holds only
tensors, dicts, lists, tuples and plain values (None, bool, int, float, str) and `sha256` digests that
content: every tensor's dtype, shape and bytes and every plain value, in a fixed order. Loading uses
`torch.load(weights_only=True)`, which builds tensors and plain containers and refuses any other
object, so a file from a results or cache folder never executes code; the digest is then recomputed,
so a tampered, truncated or foreign file is detected (ChecksumError naming the file) instead of used.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.files import atomic_write_bytes

FORMAT = "amfs-checked-1"


class ChecksumError(Exception):
    """A checked file that is unreadable, not a checked file, or whose content does not match its sha256."""


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}{{".encode())
        for key in sorted(obj, key=lambda k: (type(k).__name__, repr(k))):
            _feed(h, key)
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(f"{type(obj).__name__[0]}{len(obj)}[".encode())
        for item in obj:
            _feed(h, item)
        h.update(b"]")
    elif obj is None or isinstance(obj, bool | int | float | str):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"a checked file holds tensors, containers and plain values only, not {type(obj).__name__}")


def plain(obj: Any) -> Any:
    """obj with str, int and float subclasses (torch.__version__, numpy scalars' kin) turned into the builtin
    types, which is all torch.load(weights_only=True) accepts besides tensors and containers."""
    if isinstance(obj, torch.Tensor) or obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, dict):
        return {plain(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(plain(v) for v in obj) if type(obj) in (list, tuple) else [plain(v) for v in obj]
    for kind in (bool, int, float, str):
        if isinstance(obj, kind):
            return kind(obj)
    raise TypeError(f"a checked file holds tensors, containers and plain values only, not {type(obj).__name__}")


def content_sha256(obj: Any) -> str:
    """sha256 of a payload's content (tensor bytes, values and structure), independent of how it is stored."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def checked_bytes(payload: Any) -> tuple[bytes, str]:
    """(the bytes of a checked file holding payload, the payload's sha256)."""
    payload = plain(payload)
    digest = content_sha256(payload)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": digest, "payload": payload}, buffer)
    return buffer.getvalue(), digest


def save_checked(path: Path, payload: Any) -> str:
    """Write payload atomically as a checked file; returns its sha256."""
    data, digest = checked_bytes(payload)
    atomic_write_bytes(path, data)
    return digest


def load_checked(path: Path, mmap: bool = False) -> tuple[Any, str]:
    """(payload on the CPU, its sha256) of a checked file, verified; ChecksumError otherwise.
    mmap maps the file instead of reading it (the verification still reads every byte once)."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # truncated, foreign, or carrying objects weights_only refuses
        raise ChecksumError(f"{path}: unreadable or not a plain-tensor file ({type(e).__name__}: {e})") from e
    if not isinstance(stored, dict) or stored.get("format") != FORMAT or "payload" not in stored:
        raise ChecksumError(f"{path}: not a checked file (no {FORMAT!r} header with a sha256)")
    try:
        found = content_sha256(stored["payload"])
    except TypeError as e:
        raise ChecksumError(f"{path}: {e}") from e
    if found != stored.get("sha256"):
        raise ChecksumError(
            f"{path}: content sha256 {found[:16]}... does not match the recorded {str(stored.get('sha256'))[:16]}... "
            "(the file was modified or corrupted after it was written)"
        )
    return stored["payload"], found
