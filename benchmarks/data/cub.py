"""CUB-200-2011 (Wah et al. 2011) with the Closer Look split (Chen et al. 2019): 100 / 50 / 50 classes.

Layout under the data root (as the official CUB_200_2011.tgz extracts), at `CUB_200_2011/` or
`cub/CUB_200_2011/`:
    images/<class folder>/<file>.jpg, images.txt (`<image id> <path>`),
    image_class_labels.txt (`<image id> <class id>`), classes.txt (`<class id> <name>`)

Split: the classes sorted by class id get index i = 0, 1, ...; class i is base (train) if i % 2 == 0,
validation if i % 4 == 1, novel (test) if i % 4 == 3. With the official ids 1..200 this is base =
001, 003, ..., val = 002, 006, ..., novel = 004, 008, ..., the Closer Look `base/val/novel.json`.
Pixels: RGB, resized to 96x96 (bilinear) and centre-cropped to 84x84, Closer Look's evaluation
transform (`Resize(int(84 * 1.15))`, `CenterCrop(84)`). Listed images that are absent make the split
partial (warned, counted in the provenance); a class without any image is an error, and so is an id
listed twice in a list file or an image file listed under two ids (naming the file and line).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.data.cache import fingerprint, stat_entries
from benchmarks.data.decode import DecodeSpec, ImageRef
from benchmarks.data.errors import DataError, DataMissing
from benchmarks.data.plan import ClassFiles, SplitPlan, check_not_empty, file_builder, files_provenance

NAME = "cub"
FOLDERS = ("CUB_200_2011", "cub/CUB_200_2011")
LISTS = ("images.txt", "image_class_labels.txt", "classes.txt")
SPEC = DecodeSpec(size=84, mode="RGB", resize="resize_center_crop")

INFO = {
    "sources": [
        "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz, "
        "https://data.caltech.edu/records/65de6-vp158)",
        "https://github.com/wyharveychen/CloserLookFewShot (split rule)",
    ],
    "layout": "CUB_200_2011/ (or cub/CUB_200_2011/) with images/<class>/<file>.jpg, images.txt, "
    "image_class_labels.txt, classes.txt",
    "splits": "Closer Look: classes sorted by id, index i -> train if i%2==0, val if i%4==1, test if i%4==3 "
    "(100 / 50 / 50)",
    "image_size": [3, 84, 84],
}


def split_of_index(i: int) -> str:
    """Closer Look's rule for the i-th class (0-based, classes sorted by id)."""
    return "train" if i % 2 == 0 else ("val" if i % 4 == 1 else "test")


def find_folder(data_root: Path) -> Path:
    for rel in FOLDERS:
        folder = Path(data_root) / rel
        if folder.is_dir():
            return folder
    raise DataMissing(
        f"CUB: none of {', '.join(str(Path(data_root) / f) for f in FOLDERS)} exists. Expected layout: "
        f"{INFO['layout']}. Official source: {INFO['sources'][0]}"
    )


def read_id_list(path: Path, unique_values: bool = False) -> list[tuple[int, str]]:
    """`<integer id> <value>` lines of one of CUB's list files, each id listed once (an image id twice
    could put one image under two classes, or twice in one); with unique_values each value once too
    (images.txt: one file under two ids would be a support and a query image of one task)."""
    if not path.is_file():
        raise DataMissing(f"CUB: {path} not found. Expected layout: {INFO['layout']}. Source: {INFO['sources'][0]}")
    out = []
    ids: dict[int, int] = {}
    values: dict[str, int] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}, line {line_no}: expected '<id> <value>', found {line!r}; use the official file")
        key, value = int(parts[0]), parts[1].strip()
        if key in ids:
            raise DataError(
                f"{path}, line {line_no}: id {key} is listed again (first at line {ids[key]}); use the official file"
            )
        if unique_values and value in values:
            raise DataError(
                f"{path}, line {line_no}: {value} is listed again (first at line {values[value]}, another id); "
                "use the official file"
            )
        ids[key], values[value] = line_no, line_no
        out.append((key, value))
    return out


def plan(data_root: Path, split: str) -> SplitPlan:
    folder = find_folder(data_root)
    images_dir = folder / "images"
    if not images_dir.is_dir():
        raise DataMissing(f"CUB: {images_dir} not found. Expected layout: {INFO['layout']}")
    class_names = dict(read_id_list(folder / "classes.txt"))
    image_paths = read_id_list(folder / "images.txt", unique_values=True)
    image_class = {}
    for image_id, value in read_id_list(folder / "image_class_labels.txt"):
        if not value.isdigit() or int(value) not in class_names:
            raise DataError(
                f"{folder / 'image_class_labels.txt'}: image {image_id} has class {value!r}, "
                f"which classes.txt does not list; use the official files"
            )
        image_class[image_id] = int(value)
    by_class: dict[int, list[str]] = {cid: [] for cid in class_names}
    for image_id, rel in image_paths:
        if image_id not in image_class:
            raise DataError(f"{folder / 'image_class_labels.txt'}: no class for image {image_id} ({rel}) of images.txt")
        by_class[image_class[image_id]].append(rel)
    chosen = [cid for i, cid in enumerate(sorted(class_names)) if split_of_index(i) == split]
    classes = [
        ClassFiles(
            class_names[cid],
            [ImageRef(str(images_dir / rel)) for rel in by_class[cid] if (images_dir / rel).is_file()],
            len(by_class[cid]),
            f"{folder / 'classes.txt'} (class {cid})",
        )
        for cid in chosen
    ]
    check_not_empty(classes, images_dir, "every class needs its images (use the official CUB_200_2011.tgz)")
    files = [folder / name for name in LISTS] + [r.path for c in classes for r in c.refs]
    source_fp = fingerprint(stat_entries(files, folder), {"dataset": NAME, "split": split, "spec": repr(SPEC)})
    provenance = {
        "dataset": NAME,
        "split": split,
        **files_provenance(classes, folder, "folder+lists", SPEC),
        "class_ids": chosen,
        "checksum": "not applicable (no published checksums for the extracted files)",
        "preprocessing": "RGB, resize to 96x96 bilinear, centre crop 84x84 (Closer Look evaluation transform)",
    }
    return SplitPlan(
        NAME, split, source_fp, lambda: dict(provenance), file_builder(NAME, split, classes, SPEC, provenance)
    )
