"""The preprocessed cache: reused while the source is unchanged, rebuilt when it changes, written atomically."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.data import DataError, cache, commands, load_split, plan_split
from benchmarks.data import plan as plan_module
from benchmarks.data.split_data import SplitData
from support.datasets import make_mini


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_mini(tmp_path / "data")


def test_reused_while_unchanged_without_decoding(root, tmp_path, monkeypatch):
    first = load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)
    assert first.provenance["cache"] == "built"
    assert first.provenance["cache_file"] == str(tmp_path / "cache" / "mini-imagenet-val-v2.pt")

    def no_decoding(*args, **kwargs):
        raise AssertionError("a valid cache must not be rebuilt")

    monkeypatch.setattr(plan_module, "decode_images", no_decoding)
    second = load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)
    assert second.provenance["cache"] == "reused"
    assert second.provenance["cache_check"] == "content sha256 verified"
    assert second.provenance["cache_sha256"] == first.provenance["cache_sha256"]
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert second.provenance["fingerprint"] == first.provenance["fingerprint"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["mini-imagenet-val-v2.pt"]  # no temporary left


def test_rebuilt_when_an_image_changes(root, tmp_path):
    cache_dir = tmp_path / "cache"
    before = load_split("mini-imagenet", "val", root, cache_dir, progress=False)
    changed = root / "mini-imagenet/images/n10200000001.jpg"
    Image.fromarray(np.zeros((84, 84, 3), dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    plan = plan_split("mini-imagenet", "val", root)
    assert cache.status(cache.cache_path(cache_dir, "mini-imagenet", "val"), plan.fingerprint) == "stale"
    after = load_split("mini-imagenet", "val", root, cache_dir, progress=False)
    assert after.provenance["cache"] == "built"
    assert after.provenance["fingerprint"] != before.provenance["fingerprint"]
    assert after.images[7].max() == 0 and before.images[7].max() > 0  # class n102, second image
    assert cache.status(cache.cache_path(cache_dir, "mini-imagenet", "val"), plan.fingerprint) == "built"


def test_rebuilt_when_an_image_disappears(root, tmp_path):
    load_split("mini-imagenet", "test", root, tmp_path / "cache", progress=False)
    (root / "mini-imagenet/images/n20200000005.jpg").unlink()
    with pytest.warns(UserWarning, match="partial"):
        after = load_split("mini-imagenet", "test", root, tmp_path / "cache", progress=False)
    assert after.provenance["cache"] == "built" and after.class_counts().tolist() == [6, 5]


def test_unreadable_cache_is_rebuilt(root, tmp_path):
    cache_dir = tmp_path / "cache"
    load_split("mini-imagenet", "val", root, cache_dir, progress=False)
    path = cache.cache_path(cache_dir, "mini-imagenet", "val")
    path.write_bytes(b"torn")
    assert cache.status(path, plan_split("mini-imagenet", "val", root).fingerprint) == "corrupt"
    again = load_split("mini-imagenet", "val", root, cache_dir, progress=False)
    assert again.provenance["cache"] == "built" and again.images.shape[0] == 12


def test_data_root_is_never_written(root, tmp_path):
    before = snapshot(root)
    for split in ("train", "val", "test"):
        load_split("mini-imagenet", split, root, tmp_path / "cache", progress=False)
    assert snapshot(root) == before


def test_unwritable_cache_dir_is_a_clear_error(root, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(DataError, match="cannot write the cache file .*--cache-dir"):
        load_split("mini-imagenet", "val", root, blocker, progress=False)


def test_status_absent_then_built(root, tmp_path):
    plan = plan_split("mini-imagenet", "train", root)
    path = cache.cache_path(tmp_path / "cache", "mini-imagenet", "train")
    assert cache.status(path, plan.fingerprint) == "absent"
    load_split("mini-imagenet", "train", root, tmp_path / "cache", progress=False)
    assert cache.status(path, plan.fingerprint) == "built"


def test_served_from_the_cache_alone_when_the_source_is_absent(root, tmp_path):
    """A compute node given only the caches: the split is served, and its provenance says it was not checked."""
    built = load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)
    with pytest.warns(UserWarning, match="cache only"):
        only = load_split("mini-imagenet", "val", tmp_path / "no-data", tmp_path / "cache", progress=False)
    assert torch.equal(only.images, built.images) and torch.equal(only.labels, built.labels)
    assert only.provenance["cache"].startswith("cache only")
    assert only.provenance["fingerprint"] == built.provenance["fingerprint"]
    with pytest.raises(DataError):  # another split has no cache: the missing source is the error
        load_split("mini-imagenet", "test", tmp_path / "no-data", tmp_path / "cache", progress=False)


def test_a_broken_source_is_an_error_even_with_a_cache(root, tmp_path):
    load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)
    broken = tmp_path / "broken"
    (broken / "mini-imagenet").mkdir(parents=True)  # the dataset's folder is there, its files are not
    with pytest.raises(DataError):
        load_split("mini-imagenet", "val", broken, tmp_path / "cache", progress=False)


def test_omniglot_from_the_cache_alone_gets_its_rotation_classes(tmp_path):
    """The cache stores unrotated characters; serving it alone must add the rotations as plan.finish does."""
    images = torch.arange(3 * 4, dtype=torch.uint8).reshape(3, 1, 2, 2)
    stored = SplitData("omniglot", "val", images, torch.tensor([0, 1, 2]), ["a", "b", "c"], {"dataset": "omniglot"})
    path = cache.cache_path(tmp_path / "cache", "omniglot", "val")
    cache.save(path, stored, "some-fingerprint")
    with pytest.warns(UserWarning, match="cache only"):
        served = load_split("omniglot", "val", tmp_path / "no-data", tmp_path / "cache", progress=False)
    assert served.n_classes == 12 and served.images.shape[0] == 12
    assert torch.equal(served.images[3:6], torch.rot90(images, 1, dims=(2, 3)))


def tamper_images(path: Path) -> None:
    """Zero the image tensor of a cache file, keeping everything else (its fingerprint, any recorded sha256)."""
    stored = torch.load(path, weights_only=True)
    content = stored.get("payload", stored)  # a checked file, or a file of the format before it
    content["images"].zero_()
    torch.save(stored, path)


def test_a_cache_with_tampered_images_is_detected_and_rebuilt(root, tmp_path, capsys):
    """The fingerprint says which source a cache claims; only the content checksum shows its images were
    changed (zeroed images kept the fingerprint and made every accuracy chance)."""
    cache_dir = tmp_path / "cache"
    built = load_split("mini-imagenet", "val", root, cache_dir, progress=False)
    path = cache.cache_path(cache_dir, "mini-imagenet", "val")
    tamper_images(path)
    plan = plan_split("mini-imagenet", "val", root)
    assert cache.status(path, plan.fingerprint) == "corrupt"
    commands.check(root, cache_dir)
    out = capsys.readouterr().out
    assert f"{path}: unreadable, or its content does not match its sha256" in out
    again = load_split("mini-imagenet", "val", root, cache_dir, progress=False)
    assert again.provenance["cache"] == "built" and torch.equal(again.images, built.images)
    assert cache.status(path, plan.fingerprint) == "built"


def test_a_tampered_cache_without_its_source_is_refused_naming_the_file(root, tmp_path):
    cache_dir = tmp_path / "cache"
    load_split("mini-imagenet", "val", root, cache_dir, progress=False)
    path = cache.cache_path(cache_dir, "mini-imagenet", "val")
    tamper_images(path)
    with pytest.raises(DataError, match=f"{re.escape(str(path))}: content sha256 .* cannot be rebuilt here"):
        load_split("mini-imagenet", "val", tmp_path / "no-data", cache_dir, progress=False)


def test_cache_files_get_the_mode_the_umask_gives(root, tmp_path):
    previous = os.umask(0o022)
    try:
        load_split("mini-imagenet", "val", root, tmp_path / "cache", progress=False)
    finally:
        os.umask(previous)
    (path,) = (tmp_path / "cache").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
