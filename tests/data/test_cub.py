"""CUB-200-2011 loader on a tiny fixture in the official layout, and the Closer Look split rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.data import DataError, DataMissing, load_split
from benchmarks.data.cub import split_of_index

N_CLASSES = 8
PER_CLASS = 4


def make_cub(root: Path) -> Path:
    folder = root / "CUB_200_2011"
    rng = np.random.default_rng(1)
    classes, images, labels = [], [], []
    image_id = 1
    for cid in range(1, N_CLASSES + 1):
        name = f"{cid:03d}.Bird_{cid}"
        classes.append(f"{cid} {name}")
        (folder / "images" / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            rel = f"{name}/Bird_{cid}_{i:04d}.jpg"
            height, width = rng.integers(90, 140, size=2)
            mode_gray = cid == 3 and i == 0  # CUB holds a few greyscale JPEGs
            shape = (height, width) if mode_gray else (height, width, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / "images" / rel)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {cid}")
            image_id += 1
    (folder / "classes.txt").write_text("\n".join(classes) + "\n")
    (folder / "images.txt").write_text("\n".join(images) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_cub(tmp_path / "data")


def test_closer_look_split_on_the_fixture(root, tmp_path):
    expected = {"train": [1, 3, 5, 7], "val": [2, 6], "test": [4, 8]}
    seen = set()
    for split, ids in expected.items():
        data = load_split("cub", split, root, tmp_path / "cache", progress=False)
        assert data.class_names == [f"{cid:03d}.Bird_{cid}" for cid in ids]
        assert data.images.shape == (len(ids) * PER_CLASS, 3, 84, 84) and data.images.dtype == torch.uint8
        assert data.class_counts().tolist() == [PER_CLASS] * len(ids)
        assert data.provenance["class_ids"] == ids
        assert not seen & set(data.class_names)
        seen |= set(data.class_names)
    assert len(seen) == N_CLASSES


def test_pixels_are_resized_and_centre_cropped(root, tmp_path):
    data = load_split("cub", "train", root, tmp_path / "cache", progress=False)
    first = root / "CUB_200_2011/images/001.Bird_1/Bird_1_0000.jpg"
    with Image.open(first) as im:
        big = im.convert("RGB").resize((96, 96), Image.Resampling.BILINEAR)
        expected = np.asarray(big.crop((6, 6, 90, 90))).transpose(2, 0, 1)
    assert np.array_equal(data.images[0].numpy(), expected)


def test_missing_image_makes_the_split_partial(root, tmp_path):
    (root / "CUB_200_2011/images/004.Bird_4/Bird_4_0001.jpg").unlink()
    with pytest.warns(UserWarning, match="cub test is partial: 7 of 8 images"):
        data = load_split("cub", "test", root, tmp_path / "cache", progress=False)
    assert data.provenance["missing_images"] == 1 and data.class_counts().tolist() == [3, 4]


def test_empty_class_is_an_error(root, tmp_path):
    for jpg in (root / "CUB_200_2011/images/006.Bird_6").glob("*.jpg"):
        jpg.unlink()
    with pytest.raises(DataError, match="class '006.Bird_6' has no images"):
        load_split("cub", "val", root, tmp_path / "cache", progress=False)


def test_corrupt_image_names_the_file(root, tmp_path):
    bad = root / "CUB_200_2011/images/002.Bird_2/Bird_2_0002.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    with pytest.raises(DataError, match="Bird_2_0002.jpg: cannot decode image"):
        load_split("cub", "val", root, tmp_path / "cache", progress=False)


def test_missing_folder_and_list_file(tmp_path, root):
    with pytest.raises(DataMissing, match="CUB_200_2011.*images.txt.*vision.caltech.edu"):
        load_split("cub", "train", tmp_path / "nothing", tmp_path / "cache", progress=False)
    (root / "CUB_200_2011/image_class_labels.txt").unlink()
    with pytest.raises(DataMissing, match="image_class_labels.txt not found"):
        load_split("cub", "train", root, tmp_path / "cache", progress=False)


def test_label_for_unknown_class_is_an_error(root, tmp_path):
    labels = root / "CUB_200_2011/image_class_labels.txt"
    labels.write_text(labels.read_text().replace("\n5 2\n", "\n5 99\n"))
    with pytest.raises(DataError, match="image 5 has class '99'"):
        load_split("cub", "train", root, tmp_path / "cache", progress=False)


def test_rule_matches_the_closer_look_split_files(data_root):
    """base / val / novel.json of Closer Look: the rule reproduces their class sets over the 200 classes."""
    folder = data_root / "cub"
    if not (folder / "base.json").is_file():
        pytest.skip(f"{folder} has no Closer Look split files")
    names = {"train": "base", "val": "val", "test": "novel"}
    for split, name in names.items():
        listed = json.loads((folder / f"{name}.json").read_text())
        labels = sorted(set(listed["image_labels"]))
        assert labels == [i for i in range(200) if split_of_index(i) == split]
        class_numbers = {int(listed["label_names"][i].split(".")[0]) for i in labels}
        assert class_numbers == {i + 1 for i in labels}


@pytest.mark.parametrize(
    "list_file, extra, message",
    [
        ("image_class_labels.txt", "5 4", "class_labels.txt, line 33: id 5 is listed again \\(first at line 5\\)"),
        ("images.txt", "5 002.Bird_2/Bird_2_0000.jpg", "images.txt, line 33: id 5 is listed again"),
        ("images.txt", "99 002.Bird_2/Bird_2_0000.jpg", "images.txt, line 33: 002.Bird_2/Bird_2_0000.jpg is listed"),
        ("classes.txt", "3 003.Other", "classes.txt, line 9: id 3 is listed again"),
    ],
)
def test_a_repeated_id_or_file_in_a_list_is_an_error_naming_its_line(root, tmp_path, list_file, extra, message):
    """An image id twice could put one image under two classes; one file under two ids would be drawn twice."""
    path = root / "CUB_200_2011" / list_file
    path.write_text(path.read_text() + extra + "\n")
    with pytest.raises(DataError, match=message):
        load_split("cub", "train", root, tmp_path / "cache", progress=False)
