"""mini-ImageNet loader on a tiny fixture in Ravi's layout: flat images folder + split CSVs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.data import DataError, DataMissing, EpisodeSampler, load_split
from support.datasets import CLASSES, PER_CLASS, make_mini


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_mini(tmp_path / "data")


def test_splits_follow_the_csvs(root, tmp_path):
    for split, labels in CLASSES.items():
        data = load_split("mini-imagenet", split, root, tmp_path / "cache", progress=False)
        assert data.class_names == labels
        assert data.images.shape == (len(labels) * PER_CLASS, 3, 84, 84) and data.images.dtype == torch.uint8
        assert data.labels.tolist() == [i for i in range(len(labels)) for _ in range(PER_CLASS)]
        assert data.provenance["partial"] is False and data.provenance["images"] == len(labels) * PER_CLASS
    first = root / "mini-imagenet/images/n00100000000.jpg"
    train = load_split("mini-imagenet", "train", root, tmp_path / "cache", progress=False)
    assert np.array_equal(train.images[0].numpy(), np.asarray(Image.open(first).convert("RGB")).transpose(2, 0, 1))


def test_other_sizes_are_resized_to_84(tmp_path):
    root = make_mini(tmp_path / "data", size=(100, 90))
    data = load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)
    assert data.images.shape[1:] == (3, 84, 84)


def test_missing_files_make_a_partial_split_warned_once(root, tmp_path):
    for i in range(4, PER_CLASS):  # 2 of 6 missing in each train class
        for label in CLASSES["train"]:
            (root / f"mini-imagenet/images/{label}{i:08d}.jpg").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_split("mini-imagenet", "train", root, tmp_path / "cache", progress=False)
        again = load_split("mini-imagenet", "train", root, tmp_path / "cache", progress=False)
    partial = [w for w in caught if "partial" in str(w.message)]
    assert len(partial) == 1 and "12 of 18 images present (6 missing)" in str(partial[0].message)
    p = data.provenance
    assert (p["partial"], p["images"], p["expected_images"], p["missing_images"]) == (True, 12, 18, 6)
    assert p["images_per_class_present"] == [4] and p["images_per_class_expected"] == [6]
    assert data.class_counts().tolist() == [4, 4, 4]
    assert again.provenance["cache"] == "reused" and again.provenance["partial"] is True


def test_class_without_any_image_is_an_error(root, tmp_path):
    for i in range(PER_CLASS):
        (root / f"mini-imagenet/images/n102{i:08d}.jpg").unlink()
    with pytest.raises(DataError, match=r"val.csv \(label n102\): class 'n102' has no images"):
        load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)


def test_missing_layout_names_the_expected_files_and_source(tmp_path):
    (tmp_path / "mini-imagenet").mkdir()
    with pytest.raises(DataMissing) as err:
        load_split("mini-imagenet", "test", tmp_path, tmp_path / "cache", progress=False)
    message = str(err.value)
    assert "mini-imagenet/images" in message and "test.csv" in message and "filename,label" in message
    assert "meta-learning-lstm" in message


def test_bad_csv_header_and_row_are_errors(root, tmp_path):
    csv = root / "mini-imagenet/val.csv"
    csv.write_text("file,class\nx.jpg,n1\n")
    with pytest.raises(DataError, match="val.csv: expected the header 'filename,label'"):
        load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)
    csv.write_text("filename,label\nx.jpg\n")
    with pytest.raises(DataError, match="val.csv, line 2"):
        load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)


def test_corrupt_jpeg_names_the_file(root, tmp_path):
    bad = root / "mini-imagenet/images/n20100000003.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match="n20100000003.jpg: cannot decode image"):
        load_split("mini-imagenet", "test", root, tmp_path / "cache", progress=False)


def test_a_repeated_row_is_an_error_naming_the_file_and_line(root, tmp_path):
    """Rows repeated would let one image be a support and a query image of the same task."""
    csv_path = root / "mini-imagenet" / "val.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines + lines[1:]) + "\n")
    with pytest.raises(DataError, match=f"{csv_path}, line 14: n10100000000.jpg is listed again \\(first at line 2\\)"):
        load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)


def test_a_file_under_two_labels_is_an_error(root, tmp_path):
    csv_path = root / "mini-imagenet" / "val.csv"
    csv_path.write_text(csv_path.read_text() + "n10100000003.jpg,n102\n")
    with pytest.raises(DataError, match="line 14: n10100000003.jpg is listed under label 'n102' and, at line 5"):
        load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)


def test_a_file_in_two_splits_is_an_error(root, tmp_path):
    test_csv = root / "mini-imagenet" / "test.csv"
    test_csv.write_text(test_csv.read_text() + "n10100000003.jpg,n201\n")
    with pytest.raises(DataError, match="file n10100000003.jpg is in two splits"):
        load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)


def test_a_class_too_small_for_the_episodes_names_the_split_file(root, tmp_path):
    data = load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)
    csv_path = root / "mini-imagenet" / "val.csv"
    with pytest.raises(DataError, match=f"\\({csv_path}\\): 2 classes have fewer than k_shot \\+ n_query = 7"):
        EpisodeSampler(data, n_way=2, k_shot=2, n_query=5)
