"""mini-ImageNet with the Ravi & Larochelle (2017) split: 64 / 16 / 20 classes of 600 images.

Layout under the data root:
    mini-imagenet/images/<filename>.jpg          (flat; 84x84 RGB, other sizes are resized with LANCZOS)
    mini-imagenet/{train,val,test}.csv           (header `filename,label`; label is the WordNet id)

Classes are sorted by label; images keep the CSV's order. A CSV row whose image file is absent is a
missing image: the split is loaded from the images present, flagged partial in its provenance (with
the expected and missing counts) and a warning is issued. A class with no image present is an error.
A file listed twice, under two labels, or in two splits' CSVs is an error naming the CSV and line.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from benchmarks.data.cache import fingerprint, stat_entries
from benchmarks.data.decode import DecodeSpec, ImageRef
from benchmarks.data.errors import DataError, DataMissing
from benchmarks.data.plan import ClassFiles, SplitPlan, check_not_empty, file_builder, files_provenance

NAME = "mini-imagenet"
FOLDER = "mini-imagenet"
SPEC = DecodeSpec(size=84, mode="RGB", resize="lanczos")
SPLIT_NAMES = ("train", "val", "test")

INFO = {
    "sources": [
        "https://github.com/twitter-research/meta-learning-lstm/tree/master/data/miniImagenet (split CSVs)",
        "https://image-net.org (ILSVRC-2012 images; e.g. https://github.com/yaoyao-liu/mini-imagenet-tools "
        "builds the 84x84 folder)",
    ],
    "layout": "mini-imagenet/images/<filename>.jpg (flat) + mini-imagenet/train.csv, val.csv, test.csv "
    "(columns filename,label)",
    "splits": "Ravi & Larochelle CSVs: 64 / 16 / 20 classes x 600 images",
    "image_size": [3, 84, 84],
}


def read_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line number, filename, label) of each row of a split CSV, validated: the header, two fields per
    row, and every filename listed once (a repeated file can be drawn as a support and a query image of
    one task, and a file under two labels belongs to no one class)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the split file ({e}); replace it with Ravi's {path.name}") from e
    if not rows or [c.strip() for c in rows[0]] != ["filename", "label"]:
        header = rows[0] if rows else "nothing"
        raise DataError(f"{path}: expected the header 'filename,label', found {header!r}; use Ravi's {path.name}")
    out = []
    first: dict[str, tuple[int, str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"{path}, line {line}: expected 'filename,label', found {','.join(row)!r}")
        filename, label = row[0].strip(), row[1].strip()
        if filename in first:
            seen_line, seen_label = first[filename]
            if seen_label != label:
                raise DataError(
                    f"{path}, line {line}: {filename} is listed under label {label!r} and, at line {seen_line}, "
                    f"under {seen_label!r}; a file belongs to one class: use Ravi's {path.name}"
                )
            raise DataError(
                f"{path}, line {line}: {filename} is listed again (first at line {seen_line}); a repeated file "
                f"can be a support and a query image of one task: remove the repeated row or use Ravi's {path.name}"
            )
        first[filename] = (line, label)
        out.append((line, filename, label))
    if not out:
        raise DataError(f"{path}: no rows after the header; use Ravi's {path.name}")
    return out


def read_csv(path: Path) -> list[tuple[str, str]]:
    """(filename, label) rows of a split CSV, validated (read_rows)."""
    return [(filename, label) for _, filename, label in read_rows(path)]


def check_disjoint(csv_path: Path, rows: list[tuple[int, str, str]]) -> None:
    """No file or label of this split is listed by another split's CSV present beside it: a test image
    seen in training, or a class in two splits, would not be a few-shot test."""
    files = {filename: line for line, filename, _ in rows}
    labels = {label: line for line, _, label in rows}
    for other in SPLIT_NAMES:
        other_path = csv_path.with_name(f"{other}.csv")
        if other_path == csv_path or not other_path.is_file():
            continue
        for line, filename, label in read_rows(other_path):
            if filename in files:
                what, here = f"file {filename}", files[filename]
            elif label in labels:
                what, here = f"label {label}", labels[label]
            else:
                continue
            raise DataError(
                f"{other_path}, line {line} and {csv_path}, line {here}: {what} is in two splits; "
                "the splits must be disjoint: use Ravi's CSVs"
            )


def plan(data_root: Path, split: str) -> SplitPlan:
    folder = Path(data_root) / FOLDER
    images_dir = folder / "images"
    csv_path = folder / f"{split}.csv"
    if not images_dir.is_dir() or not csv_path.is_file():
        absent = [str(p) for p in (images_dir, csv_path) if not p.exists()]
        raise DataMissing(
            f"mini-ImageNet: {', '.join(absent) or folder} not found. Expected layout: {INFO['layout']}. "
            f"Official sources: {'; '.join(INFO['sources'])}"
        )
    numbered = read_rows(csv_path)
    check_disjoint(csv_path, numbered)
    rows = [(filename, label) for _, filename, label in numbered]
    present = {e.name: e for e in os.scandir(images_dir)}
    by_label: dict[str, list[str]] = {}
    for filename, label in rows:
        by_label.setdefault(label, []).append(filename)
    classes = [
        ClassFiles(
            label,
            [ImageRef(str(images_dir / f)) for f in files if f in present],
            len(files),
            f"{csv_path} (label {label})",
        )
        for label, files in sorted(by_label.items())
    ]
    check_not_empty(classes, images_dir, f"copy that class's images listed in {csv_path.name} into {images_dir}")
    files = [csv_path] + [r.path for c in classes for r in c.refs]
    source_fp = fingerprint(stat_entries(files, folder), {"dataset": NAME, "split": split, "spec": repr(SPEC)})
    provenance = {
        "dataset": NAME,
        "split": split,
        **files_provenance(classes, folder, "folder+csv", SPEC),
        "split_file": str(csv_path),
        "images_per_class_present": sorted({len(c.refs) for c in classes}),
        "images_per_class_expected": sorted({c.expected for c in classes}),
        "checksum": "not applicable (no published checksums)",
    }
    return SplitPlan(
        NAME, split, source_fp, lambda: dict(provenance), file_builder(NAME, split, classes, SPEC, provenance)
    )
