"""Omniglot (Lake et al. 2015): 1,623 handwritten characters x 20 drawers, 105x105 binary PNGs.

Accepted layouts under the data root (each part independently; the folder wins when both exist):
    omniglot/images_background.zip, omniglot/images_evaluation.zip   (the official zips, read in place)
    omniglot/images_background/<Alphabet>/characterNN/*.png          (the extracted folders)
    omniglot/images_evaluation/<Alphabet>/characterNN/*.png

A zip is not trusted: an entry that escapes its folder, a name listed twice, or a PNG entry that
declares more than decode.MAX_MEMBER_BYTES uncompressed is refused, and every entry is read with
that cap whatever it declares.

Assumptions of this loader (they define the benchmark's Omniglot and appear in every provenance):
- Split. The characters are ordered background then evaluation, each sorted by alphabet folder then
  character folder name. The first 1,100 are train, the next 100 validation, the last 423 test.
  Finn et al. (2017, section 5.2) use 1,200 training and 423 test characters; the validation set is
  carved from those 1,200, so training has 1,100. Their code draws the split at random; a fixed,
  ordered split makes it reproducible without a seed.
- Rotations. Each character rotated by 0, 90, 180 and 270 degrees is a separate class in every split
  (as in Finn et al.'s code), so the splits have 4,400 / 400 / 1,692 classes of 20 images.
- Pixels. Each image is converted to 8-bit grey, resized 105 -> 28 with PIL LANCZOS and inverted, so
  strokes are bright on a dark background (as learn2learn does). The cache stores these unrotated
  images; the rotations are made in memory at load time, after resizing (exact for 90-degree turns).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from benchmarks.data.cache import fingerprint, stat_entries
from benchmarks.data.decode import MAX_MEMBER_BYTES, DecodeSpec, ImageRef
from benchmarks.data.download import fetch_verified, md5_file
from benchmarks.data.errors import DataError, DataMissing
from benchmarks.data.plan import ClassFiles, SplitPlan, check_not_empty, file_builder, files_provenance
from benchmarks.data.split_data import SplitData

NAME = "omniglot"
FOLDER = "omniglot"
PARTS = ("images_background", "images_evaluation")
PART_CHARACTERS = {"images_background": 964, "images_evaluation": 659}
ZIP_MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
BASE_URL = "https://github.com/brendenlake/omniglot/raw/master/python"
SPLIT_SIZES = {"train": 1100, "val": 100, "test": 423}  # characters, in this order over the sorted list
DRAWERS = 20
ROTATIONS = (0, 90, 180, 270)
SPEC = DecodeSpec(size=28, mode="L", resize="lanczos", invert=True)

INFO = {
    "sources": [BASE_URL + "/images_background.zip", BASE_URL + "/images_evaluation.zip"],
    "layout": "omniglot/images_background.zip + omniglot/images_evaluation.zip (md5 "
    + " / ".join(ZIP_MD5.values())
    + "), or their extracted folders omniglot/images_background/<Alphabet>/characterNN/*.png and "
    "omniglot/images_evaluation/...",
    "splits": "characters background then evaluation, sorted: 1,100 train / 100 val / 423 test; "
    "rotations 0/90/180/270 as extra classes (x4)",
    "image_size": [1, 28, 28],
    "download": "python -m benchmarks data prepare --dataset omniglot --download",
}


@dataclass(frozen=True)
class PartSource:
    """Where one part (background or evaluation) lives: an extracted folder or the official zip."""

    part: str
    kind: str  # "folder" | "zip"
    path: Path


def find_parts(data_root: Path) -> list[PartSource]:
    """Both parts, or DataMissing naming the expected layout and the official source."""
    folder = Path(data_root) / FOLDER
    found, missing = [], []
    for part in PARTS:
        if (folder / part).is_dir():
            found.append(PartSource(part, "folder", folder / part))
        elif (folder / f"{part}.zip").is_file():
            found.append(PartSource(part, "zip", folder / f"{part}.zip"))
        else:
            missing.append(part)
    if missing:
        raise DataMissing(
            f"Omniglot: {', '.join(missing)} not found under {folder}. Expected layout: {INFO['layout']}. "
            f"Official source: {', '.join(INFO['sources'])}; or run `{INFO['download']}`"
        )
    return found


def safe_member_name(name: str, archive: Path) -> PurePosixPath:
    """A zip entry's path, refusing any that would escape the folder it is read into (zip-slip)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(
            f"{archive}: refusing zip entry {name!r}, which escapes the archive's folder (absolute path or '..'); "
            "the archive is not the official one: delete it and download the official zip"
        )
    return path


def _zip_characters(source: PartSource) -> dict[str, list[ImageRef]]:
    try:
        with zipfile.ZipFile(source.path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(
            f"{source.path}: not a readable zip ({e}); it is corrupt or truncated: delete it and download "
            f"{BASE_URL}/{source.part}.zip again"
        ) from e
    characters: dict[str, list[ImageRef]] = {}
    seen: set[str] = set()
    for member in members:
        name = member.filename
        path = safe_member_name(name, source.path)
        if name in seen:  # a zip may hold one name twice: that image would be drawn twice in its class
            raise DataError(
                f"{source.path}: entry {name!r} appears twice in the archive; the archive is not the official one: "
                f"delete it and download {BASE_URL}/{source.part}.zip"
            )
        seen.add(name)
        parts = path.parts
        if name.endswith("/"):  # a folder entry: an empty character folder still counts (and then fails)
            if len(parts) == 3 and parts[0] == source.part:
                characters.setdefault(f"{parts[1]}/{parts[2]}", [])
            continue
        if path.suffix.lower() != ".png":
            continue
        if member.file_size > MAX_MEMBER_BYTES:  # refused before anything is decompressed (decode caps reads too)
            raise DataError(
                f"{source.path}: entry {name!r} declares {member.file_size} bytes uncompressed, over the "
                f"{MAX_MEMBER_BYTES} bytes an Omniglot image may have; the archive is not the official one: "
                f"delete it and download {BASE_URL}/{source.part}.zip"
            )
        if len(parts) != 4 or parts[0] != source.part:
            raise DataError(
                f"{source.path}: entry {name!r} is not {source.part}/<Alphabet>/<character>/<image>.png; "
                f"expected the official zip ({BASE_URL}/{source.part}.zip)"
            )
        characters.setdefault(f"{parts[1]}/{parts[2]}", []).append(ImageRef(name, str(source.path)))
    return characters


def _folder_characters(source: PartSource) -> dict[str, list[ImageRef]]:
    characters: dict[str, list[ImageRef]] = {}
    for alphabet in sorted((e for e in os.scandir(source.path) if e.is_dir()), key=lambda e: e.name):
        for character in sorted((e for e in os.scandir(alphabet.path) if e.is_dir()), key=lambda e: e.name):
            pngs = sorted(e.path for e in os.scandir(character.path) if e.name.lower().endswith(".png"))
            characters[f"{alphabet.name}/{character.name}"] = [ImageRef(p) for p in pngs]
    return characters


def list_characters(source: PartSource) -> list[ClassFiles]:
    """The part's characters sorted by alphabet then character folder, each with its image files sorted."""
    found = _zip_characters(source) if source.kind == "zip" else _folder_characters(source)
    classes = []
    for name in sorted(found, key=lambda n: tuple(n.split("/"))):
        refs = sorted(found[name], key=lambda r: r.path)
        where = f"{source.path}:{source.part}/{name}" if source.kind == "zip" else str(source.path / name)
        classes.append(ClassFiles(f"{source.part}/{name}", refs, DRAWERS, where))
    return classes


def checksum_status(sources: list[PartSource]) -> dict[str, str]:
    """Per part: 'ok' or 'mismatch (md5 ...)' for a zip, 'not applicable (folder)' for a folder."""
    out = {}
    for s in sources:
        if s.kind == "folder":
            out[s.part] = "not applicable (folder)"
        else:
            md5 = md5_file(s.path)
            out[s.part] = "ok" if md5 == ZIP_MD5[s.part] else f"mismatch (md5 {md5}, expected {ZIP_MD5[s.part]})"
    return out


def _source_entries(sources: list[PartSource], characters: list[ClassFiles]) -> list[tuple[str, int, int]]:
    """The zips themselves, and every PNG of the extracted folders."""
    zips = [s.path for s in sources if s.kind == "zip"]
    files = [r.path for c in characters for r in c.refs if r.container is None]
    return stat_entries([*zips, *files], sources[0].path.parent)


def plan(data_root: Path, split: str) -> SplitPlan:
    """Validate the layout, list both parts, and describe the requested split."""
    sources = find_parts(data_root)
    characters = [c for s in sources for c in list_characters(s)]
    check_not_empty(characters, sources[0].path.parent, "every character folder needs its PNG images")
    needed = sum(SPLIT_SIZES.values())
    if len(characters) != needed:
        counts = ", ".join(f"{s.path}: {sum(c.name.startswith(s.part + '/') for c in characters)}" for s in sources)
        raise DataError(
            f"Omniglot: found {len(characters)} characters ({counts}); the split needs {needed} "
            f"({' + '.join(f'{n} {p}' for p, n in PART_CHARACTERS.items())}). The copy is incomplete: "
            f"replace it with the official zips ({', '.join(INFO['sources'])})"
        )
    start = 0
    for name, size in SPLIT_SIZES.items():
        if name == split:
            break
        start += size
    chosen = characters[start : start + SPLIT_SIZES[split]]
    checksums = checksum_status(sources)
    for part, state in checksums.items():
        if state.startswith("mismatch"):
            warnings.warn(f"Omniglot: {part}.zip md5 {state}; results may not match the official data", stacklevel=2)
    settings = {"dataset": NAME, "split": split, "split_sizes": SPLIT_SIZES, "spec": repr(SPEC)}
    source_fp = fingerprint(_source_entries(sources, characters), settings)
    kinds = sorted({s.kind for s in sources})
    base = files_provenance(chosen, sources[0].path.parent, "+".join(kinds), SPEC)
    k = len(ROTATIONS)
    provenance = {
        "dataset": NAME,
        "split": split,
        **base,
        "classes": base["classes"] * k,
        "images": base["images"] * k,
        "expected_images": base["expected_images"] * k,
        "missing_images": base["missing_images"] * k,
        "characters": len(chosen),
        "character_range": [start, start + len(chosen)],
        "rotations": list(ROTATIONS),
        "parts": {s.part: {"format": s.kind, "path": str(s.path)} for s in sources},
        "checksum": checksums,
        "preprocessing": "grey, resize 105->28 PIL LANCZOS, inverted (strokes bright), rotations after resizing",
    }
    build = file_builder(NAME, split, chosen, SPEC, provenance)
    return SplitPlan(NAME, split, source_fp, lambda: dict(provenance), build, add_rotations)


def add_rotations(data: SplitData) -> SplitData:
    """Characters x rotations as classes, rotation-major: class r * n + c is character c turned by ROTATIONS[r]."""
    n = data.n_classes
    turns = [deg // 90 for deg in ROTATIONS]
    images = torch.cat([torch.rot90(data.images, t, dims=(2, 3)) for t in turns])
    labels = torch.cat([data.labels + r * n for r in range(len(turns))])
    names = [f"{name}@rot{deg:03d}" for deg in ROTATIONS for name in data.class_names]
    return SplitData(data.dataset, data.split, images, labels, names, data.provenance)


# what turns a cached split into the served one when only the cache is there (data.registry)
finish_cached = add_rotations


def download(
    data_root: Path, base_url: str | None = None, md5: dict[str, str] | None = None, progress: bool = True
) -> dict[str, str]:
    """Fetch each official zip that is absent (neither its folder nor its zip present) into <data_root>/omniglot/.

    Returns {part: 'present (folder)' | 'present' | 'downloaded'}. A zip already there is verified, never
    replaced; a checksum mismatch is a DataError that leaves every file as it was.
    """
    base_url, md5 = base_url or BASE_URL, md5 or ZIP_MD5
    folder = Path(data_root) / FOLDER
    result = {}
    for part in PARTS:
        if (folder / part).is_dir():
            result[part] = "present (folder)"
            continue
        result[part] = fetch_verified(f"{base_url.rstrip('/')}/{part}.zip", folder / f"{part}.zip", md5[part], progress)
    return result
