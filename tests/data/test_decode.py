"""Image decoding: the process pool gives what the serial path gives, and reports a bad file by name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_the_pool_closes_when_the_run_has_taken_over_sigterm(tmp_path):
    """A run handles TERM by setting a flag (runs/interrupt.py); the decoding pool, forked from it, must
    not inherit that, or closing the pool (which sends its workers TERM) waits for ever."""
    script = tmp_path / "decode_under_handler.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import signal
            import numpy as np
            from PIL import Image
            from benchmarks.data import decode
            from benchmarks.runs.interrupt import CONTROL

            CONTROL.stop_on(signal.SIGTERM)
            refs = []
            for i in range(8):
                path = "{tmp_path}/" + f"{{i}}.png"
                Image.fromarray(np.full((20, 20, 3), i * 30, dtype=np.uint8)).save(path)
                refs.append(decode.ImageRef(path))
            decode.CHUNK, decode.SERIAL_BELOW = 2, 0
            out = decode.decode_images(refs, decode.DecodeSpec(size=8), progress=False, workers=2)
            print("decoded", out.shape)
            """
        )
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script)], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "decoded (8, 3, 8, 8)" in done.stdout, done.stderr
