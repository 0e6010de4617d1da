"""Tiny datasets in the official layouts: Omniglot (folders and zips) and mini-ImageNet (Ravi's CSVs)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.data import omniglot

# 3 + 2 background characters, 2 evaluation characters; split 4 / 1 / 2 over the ordered list
FIXTURE = {
    "images_background": {
        "Beta": ["character01", "character02"],
        "Alpha": ["character01", "character02", "character03"],
    },
    "images_evaluation": {"Gamma": ["character01", "character02"]},
}
SIZES = {"train": 4, "val": 1, "test": 2}


def character_image(seed: int) -> Image.Image:
    """A 105x105 1-bit image like Omniglot's: white background, a few black strokes."""
    rng = np.random.default_rng(seed)
    canvas = np.ones((105, 105), dtype=bool)
    for _ in range(3):
        r, c = rng.integers(10, 90, size=2)
        canvas[r : r + rng.integers(5, 15), c : c + 4] = False
        canvas[r : r + 4, c : c + rng.integers(5, 15)] = False
    return Image.fromarray(canvas)  # bool array -> mode "1"


def make_folders(root: Path, drawers: int = 20) -> Path:
    seed = 0
    for part, alphabets in FIXTURE.items():
        for alphabet, characters in alphabets.items():
            for character in characters:
                folder = root / "omniglot" / part / alphabet / character
                folder.mkdir(parents=True)
                for d in range(1, drawers + 1):
                    character_image(seed).save(folder / f"{seed:04d}_{d:02d}.png")
                    seed += 1
    return root


def make_zips(source_root: Path, target: Path) -> dict[str, str]:
    """The fixture folders zipped like the official archives; returns their md5s."""
    target.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for part in omniglot.PARTS:
        base = source_root / "omniglot"
        with zipfile.ZipFile(target / f"{part}.zip", "w") as archive:
            for path in sorted((base / part).rglob("*")):
                archive.write(path, path.relative_to(base).as_posix())
        md5[part] = hashlib.md5((target / f"{part}.zip").read_bytes()).hexdigest()
    return md5


CLASSES = {"train": ["n001", "n002", "n003"], "val": ["n101", "n102"], "test": ["n201", "n202"]}
PER_CLASS = 6


def make_mini(root: Path, size: tuple[int, int] = (84, 84)) -> Path:
    folder = root / "mini-imagenet"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, labels in CLASSES.items():
        rows = ["filename,label"]
        for label in labels:
            for i in range(PER_CLASS):
                name = f"{label}{i:08d}.jpg"
                pixels = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / "images" / name, quality=95)
                rows.append(f"{name},{label}")
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root
