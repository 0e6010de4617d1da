"""Image decoding: the process pool gives what the serial path gives, and reports a bad file by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmarks.data import DataError
from benchmarks.data import decode as decode_module
from benchmarks.data.decode import DecodeSpec, ImageRef, decode_images


def test_pool_matches_serial_and_names_a_corrupt_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    refs = []
    for i in range(12):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path)
        refs.append(ImageRef(str(path)))
    spec = DecodeSpec(size=16, mode="RGB")
    serial = decode_images(refs, spec, progress=False, workers=1)
    monkeypatch.setattr(decode_module, "CHUNK", 4)
    monkeypatch.setattr(decode_module, "SERIAL_BELOW", 0)
    pooled = decode_images(refs, spec, progress=False, workers=2)
    assert serial.shape == (12, 3, 16, 16) and np.array_equal(serial, pooled)
    (tmp_path / "9.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"9\.png: cannot decode image"):
        decode_images(refs, spec, progress=False, workers=2)
