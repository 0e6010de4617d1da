"""Integration on the real data (../shared/datasets or $AMFS_DATA_ROOT): Omniglot, mini-ImageNet and CUB.

The caches are built once per test session in a temporary folder; every test here shares them.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.data import SPLITS, EpisodeSampler, load_split, omniglot, plan_split
from benchmarks.data.mini_imagenet import read_csv

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("real-data-cache")


@pytest.fixture(scope="session")
def omniglot_splits(data_root, real_cache):
    if not (data_root / "omniglot").is_dir():
        pytest.skip(f"{data_root / 'omniglot'} is absent")
    return {s: load_split("omniglot", s, data_root, real_cache, progress=False) for s in SPLITS}


@pytest.fixture(scope="session")
def mini_splits(data_root, real_cache):
    """val and test decoded; train only planned (its files listed and counted, not decoded), to keep this fast."""
    if not (data_root / "mini-imagenet").is_dir():
        pytest.skip(f"{data_root / 'mini-imagenet'} is absent")
    return {s: load_split("mini-imagenet", s, data_root, real_cache, progress=False) for s in ("val", "test")}


@pytest.fixture(scope="session")
def cub_splits(data_root, real_cache):
    if not (data_root / "cub" / "CUB_200_2011").is_dir() and not (data_root / "CUB_200_2011").is_dir():
        pytest.skip(f"CUB_200_2011 is absent under {data_root}")
    return {s: load_split("cub", s, data_root, real_cache, progress=False) for s in SPLITS}


def test_cub_closer_look_splits_on_the_real_files(data_root, cub_splits):
    """All 11,788 images in the Closer Look split: 100 / 50 / 50 classes, 5,885 / 2,950 / 2,953 images,
    decoded to 84 x 84 RGB, no class in two splits; `data check` sees the same and the caches."""
    expected = {"train": (100, 5885), "val": (50, 2950), "test": (50, 2953)}
    for split, data in cub_splits.items():
        classes, images = expected[split]
        p = data.provenance
        assert (data.n_classes, len(data.labels), p["partial"]) == (classes, images, False)
        assert data.images.shape == (images, 3, 84, 84) and data.images.dtype == torch.uint8
    names = [set(d.class_names) for d in cub_splits.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert sum(len(n) for n in names) == 200


def test_omniglot_has_964_and_659_characters_of_20_drawers(data_root):
    if not (data_root / "omniglot").is_dir():
        pytest.skip(f"{data_root / 'omniglot'} is absent")
    parts = {s.part: omniglot.list_characters(s) for s in omniglot.find_parts(data_root)}
    assert len(parts["images_background"]) == 964 and len(parts["images_evaluation"]) == 659
    assert {len(c.refs) for chars in parts.values() for c in chars} == {20}


def test_omniglot_splits(omniglot_splits):
    characters = {"train": 1100, "val": 100, "test": 423}
    for split, data in omniglot_splits.items():
        n = characters[split]
        p = data.provenance
        assert (p["characters"], p["classes"], p["images"], p["partial"]) == (n, 4 * n, 80 * n, False)
        assert data.images.shape == (80 * n, 1, 28, 28) and data.images.dtype == torch.uint8
        assert data.class_counts().eq(20).all() and data.n_classes == 4 * n
        assert data.images.float().mean() < 64  # inverted: mostly dark background, bright strokes
    assert omniglot_splits["train"].class_names[0] == "images_background/Alphabet_of_the_Magi/character01@rot000"
    assert omniglot_splits["test"].class_names[422].startswith("images_evaluation/ULOG/")
    chars = [{n.split("@")[0] for n in d.class_names} for d in omniglot_splits.values()]
    assert len(chars[0] | chars[1] | chars[2]) == 1623


def test_mini_imagenet_splits_and_partial_train(data_root, mini_splits):
    classes = {"train": 64, "val": 16, "test": 20}
    for split, data in mini_splits.items():
        assert data.n_classes == classes[split] and data.images.shape[1:] == (3, 84, 84)
    train = plan_split("mini-imagenet", "train", data_root).describe()
    assert train["classes"] == 64
    assert (train["partial"], train["images"], train["expected_images"], train["missing_images"]) == (
        True,
        64 * 350,
        64 * 600,
        64 * 250,
    )
    assert train["images_per_class_present"] == [350] and train["images_per_class_expected"] == [600]
    for split in ("val", "test"):
        p = mini_splits[split].provenance
        assert (p["partial"], p["images"]) == (False, classes[split] * 600)
    train_classes = {label for _, label in read_csv(data_root / "mini-imagenet" / "train.csv")}
    names = [train_classes, *(set(d.class_names) for d in mini_splits.values())]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])


def test_caches_are_reused(data_root, real_cache, omniglot_splits):
    again = load_split("omniglot", "val", data_root, real_cache, progress=False)
    assert again.provenance["cache"] == "reused"
    assert torch.equal(again.images, omniglot_splits["val"].images)


def test_episodes_on_real_splits(omniglot_splits, mini_splits):
    sampler = EpisodeSampler(omniglot_splits["train"], n_way=20, k_shot=5, n_query=15)
    batch = sampler.tasks(seed=0, index=0, n_tasks=16)
    assert batch.support_x.shape == (16, 100, 1, 28, 28) and batch.query_x.shape == (16, 300, 1, 28, 28)
    assert batch.query_x.min() >= 0.0 and batch.query_x.max() <= 1.0
    mini = EpisodeSampler(mini_splits["test"], n_way=5, k_shot=5, n_query=15)
    idx = mini.episode_indices(seed=0, index=0, n_tasks=4)
    assert all(len(set(t.flatten().tolist())) == 100 for t in idx)
