"""Read the official `cifar-100-python` pickles without trusting them.

A pickle can name any importable callable and have it called while loading, so an untrusted pickle is
arbitrary code. The official files (Python 2, protocol 2, read with encoding="bytes") are dicts of
bytes keys, lists of ints and bytes, and one numpy uint8 array; rebuilding that array is the only
thing that needs globals: numpy's `_reconstruct` (under its numpy-1 name `numpy.core.multiarray`, or
`numpy._core.multiarray` in a file re-saved by numpy 2), `numpy.ndarray` and `numpy.dtype`. Those are
admitted; any other global is refused with a DataError naming the file and the global.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.data.errors import DataError


def _reconstruct() -> Any:
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy's multiarray._reconstruct is not importable")


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ALLOWED_GLOBALS."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)
        raise DataError(
            f"{self.path}: refusing to load the global {module}.{name} (only {allowed} are allowed); "
            "this is not an official CIFAR-100 pickle: replace it with the official cifar-100-python files"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.path}: refusing a persistent id in the pickle; not an official CIFAR-100 file")


def load_pickle(path: Path) -> dict[str, Any]:
    """The pickled dict with str keys (bytes keys decoded), or DataError naming the file."""
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as e:  # truncated or foreign data: report the file, not the unpickler's internals
        raise DataError(f"{path}: not a readable CIFAR-100 pickle ({type(e).__name__}: {e}); replace it") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}; replace it")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def names(value: Any, path: Path, key: str) -> list[str]:
    """A list of bytes or str label names as str."""
    if not isinstance(value, list) or not all(isinstance(v, (bytes, str)) for v in value):
        raise DataError(f"{path}: {key!r} must be a list of names; replace the file")
    return [v.decode("latin1") if isinstance(v, bytes) else v for v in value]


def int_list(value: Any, path: Path, key: str, length: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) != length or not all(isinstance(v, int) for v in value):
        raise DataError(f"{path}: {key!r} must be a list of {length} integers; replace the file")
    return np.asarray(value, dtype=np.int64)
