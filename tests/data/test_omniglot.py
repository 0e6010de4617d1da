"""Omniglot loader on tiny fixtures in the official layouts (folders and zips), and its download."""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.data import DataError, DataMissing, decode, load_split, omniglot
from support.datasets import SIZES, make_folders, make_zips


@pytest.fixture(autouse=True)
def small_split(monkeypatch):
    monkeypatch.setattr(omniglot, "SPLIT_SIZES", SIZES)


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    return make_folders(tmp_path / "data")


def test_splits_are_the_ordered_characters_with_rotation_classes(folder_root, tmp_path):
    splits = {s: load_split("omniglot", s, folder_root, tmp_path / "cache", progress=False) for s in SIZES}
    # background before evaluation, alphabets sorted: Alpha/01..03, Beta/01..02, then Gamma/01..02
    order = [
        "images_background/Alpha/character01",
        "images_background/Alpha/character02",
        "images_background/Alpha/character03",
        "images_background/Beta/character01",
        "images_background/Beta/character02",
        "images_evaluation/Gamma/character01",
        "images_evaluation/Gamma/character02",
    ]
    expected = {"train": order[:4], "val": order[4:5], "test": order[5:]}
    for split, data in splits.items():
        n = SIZES[split]
        assert data.images.shape == (n * 4 * 20, 1, 28, 28) and data.images.dtype == torch.uint8
        assert data.class_names[:n] == [f"{c}@rot000" for c in expected[split]]
        assert data.class_names[n:] == [f"{c}@rot{d:03d}" for d in (90, 180, 270) for c in expected[split]]
        assert data.class_counts().tolist() == [20] * (4 * n)
        p = data.provenance
        assert (p["classes"], p["images"], p["characters"], p["partial"]) == (4 * n, 80 * n, n, False)
        assert json.loads(json.dumps(p)) == p  # travels into result records
    characters = [{c.split("@")[0] for c in d.class_names} for d in splits.values()]
    assert not (characters[0] & characters[1] or characters[0] & characters[2] or characters[1] & characters[2])


def test_pixels_are_lanczos_resized_inverted_and_rotated(folder_root, tmp_path):
    data = load_split("omniglot", "train", folder_root, tmp_path / "cache", progress=False)
    first = sorted((folder_root / "omniglot/images_background/Alpha/character01").glob("*.png"))[0]
    with Image.open(first) as im:
        expected = 255 - np.asarray(im.convert("L").resize((28, 28), Image.Resampling.LANCZOS))
    assert np.array_equal(data.images[0, 0].numpy(), expected)
    assert data.images[0].float().mean() < 128  # strokes bright on a dark background
    n_chars = SIZES["train"]
    for r in range(1, 4):
        rotated = data.images[data.labels == r * n_chars]
        assert torch.equal(rotated, torch.rot90(data.images[data.labels == 0], r, dims=(2, 3)))


def test_zips_give_the_same_split_as_folders(folder_root, tmp_path):
    zip_root = tmp_path / "zipped"
    make_zips(folder_root, zip_root / "omniglot")
    from_folders = load_split("omniglot", "test", folder_root, tmp_path / "c1", progress=False)
    with pytest.warns(UserWarning, match="md5"):  # fixture zips are not the official files
        from_zips = load_split("omniglot", "test", zip_root, tmp_path / "c2", progress=False)
    assert torch.equal(from_folders.images, from_zips.images)
    assert torch.equal(from_folders.labels, from_zips.labels)
    assert from_folders.class_names == from_zips.class_names
    assert from_zips.provenance["format"] == "zip"
    assert from_zips.provenance["checksum"]["images_background"].startswith("mismatch")


@pytest.mark.parametrize("entry", ["images_background/../../escaped.png", "/abs/escaped.png"])
def test_zip_entry_escaping_the_folder_is_refused(tmp_path, entry):
    folder = tmp_path / "data" / "omniglot"
    folder.mkdir(parents=True)
    for part in omniglot.PARTS:
        with zipfile.ZipFile(folder / f"{part}.zip", "w") as archive:
            archive.writestr(f"{part}/A/character01/1.png", b"x")
            if part == "images_background":
                archive.writestr(entry, b"x")
    with pytest.raises(DataError, match="refusing zip entry") as err:
        load_split("omniglot", "train", tmp_path / "data", tmp_path / "cache", progress=False)
    assert "images_background.zip" in str(err.value)
    assert not list(tmp_path.rglob("escaped.png"))


def test_missing_folder_names_layout_and_source(tmp_path):
    with pytest.raises(DataMissing) as err:
        load_split("omniglot", "train", tmp_path, tmp_path / "cache", progress=False)
    message = str(err.value)
    assert "images_background" in message and "characterNN/*.png" in message
    assert "github.com/brendenlake/omniglot" in message and "--download" in message


def test_corrupt_image_names_the_file(folder_root, tmp_path):
    bad = sorted((folder_root / "omniglot/images_evaluation/Gamma/character02").glob("*.png"))[3]
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match=re.escape(str(bad))):
        load_split("omniglot", "test", folder_root, tmp_path / "cache", progress=False)


def test_empty_character_is_an_error(folder_root, tmp_path):
    for png in (folder_root / "omniglot/images_background/Beta/character02").glob("*.png"):
        png.unlink()
    with pytest.raises(DataError, match="Beta/character02.*no images"):
        load_split("omniglot", "val", folder_root, tmp_path / "cache", progress=False)


def test_wrong_character_count_is_an_error(folder_root, tmp_path, monkeypatch):
    monkeypatch.setattr(omniglot, "SPLIT_SIZES", {"train": 1100, "val": 100, "test": 423})
    with pytest.raises(DataError, match="found 7 characters.*needs 1623"):
        load_split("omniglot", "train", folder_root, tmp_path / "cache", progress=False)


# --- download ---------------------------------------------------------------------------------


@pytest.fixture
def server(folder_root, tmp_path) -> tuple[str, dict[str, str]]:
    """A file:// 'server' holding the fixture zips, and their md5s."""
    md5 = make_zips(folder_root, tmp_path / "server")
    return (tmp_path / "server").as_uri(), md5


def test_download_fetches_verifies_and_never_refetches(server, tmp_path):
    url, md5 = server
    root = tmp_path / "fresh"
    assert omniglot.download(root, url, md5, progress=False) == dict.fromkeys(omniglot.PARTS, "downloaded")
    for part in omniglot.PARTS:
        assert (root / "omniglot" / f"{part}.zip").read_bytes() == (tmp_path / "server" / f"{part}.zip").read_bytes()
    stamp = (root / "omniglot/images_background.zip").stat().st_mtime_ns
    assert omniglot.download(root, url, md5, progress=False) == dict.fromkeys(omniglot.PARTS, "present")
    assert (root / "omniglot/images_background.zip").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (root / "omniglot").iterdir()) == ["images_background.zip", "images_evaluation.zip"]


def test_download_md5_mismatch_writes_nothing(server, tmp_path):
    url, _ = server
    root = tmp_path / "fresh"
    with pytest.raises(DataError, match="expected 68d2efa1b9178cc56df9314c21c6e718; nothing was written"):
        omniglot.download(root, url, None, progress=False)  # the official md5s
    assert not list((root / "omniglot").iterdir())


def test_existing_bad_zip_is_not_overwritten(server, tmp_path):
    url, md5 = server
    target = tmp_path / "fresh" / "omniglot" / "images_background.zip"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    with pytest.raises(DataError, match="exists but its md5"):
        omniglot.download(tmp_path / "fresh", url, md5, progress=False)
    assert target.read_bytes() == b"truncated"


def test_download_skips_parts_present_as_folders(server, folder_root):
    url, md5 = server
    assert omniglot.download(folder_root, url, md5, progress=False) == dict.fromkeys(omniglot.PARTS, "present (folder)")
    assert not list((folder_root / "omniglot").glob("*.zip"))


def test_unreachable_url_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot download .*nowhere"):
        omniglot.download(tmp_path, (tmp_path / "nowhere").as_uri(), progress=False)


def official_like_zips(tmp_path: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Both parts as zips of one tiny character each, plus extra members in the background zip."""
    folder = tmp_path / "data" / "omniglot"
    folder.mkdir(parents=True)
    for part in omniglot.PARTS:
        with zipfile.ZipFile(folder / f"{part}.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{part}/A/character01/1.png", b"x")
            for name, data in (extra or {}).items() if part == "images_background" else ():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # zipfile warns about a duplicate name: that is the point
                    archive.writestr(name, data)
    return tmp_path / "data"


def test_a_member_listed_twice_in_a_zip_is_refused(tmp_path):
    """One name twice would be one image drawn twice in its class: a support image could be its own query."""
    root = official_like_zips(tmp_path, {"images_background/A/character01/1.png": b"x"})
    with pytest.raises(DataError, match="entry 'images_background/A/character01/1.png' appears twice"):
        load_split("omniglot", "train", root, tmp_path / "cache", progress=False)


def test_a_zip_member_declaring_a_huge_size_is_refused_before_decompressing(tmp_path):
    """11 MB of zeros compress to a few kilobytes; the member is refused from its declared size."""
    root = official_like_zips(tmp_path, {"images_background/A/character02/1.png": bytes(11 * 2**20)})
    assert (root / "omniglot" / "images_background.zip").stat().st_size < 100_000
    with pytest.raises(DataError, match="declares 11534336 bytes uncompressed, over the 10485760 bytes"):
        load_split("omniglot", "train", root, tmp_path / "cache", progress=False)


def test_a_zip_member_is_read_with_a_cap_whatever_it_declares(tmp_path, monkeypatch):
    """The declared size can lie: reading stops one byte past the cap."""
    archive = official_like_zips(tmp_path) / "omniglot" / "images_background.zip"
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("images_background/A/character01/2.png", bytes(5000))
    monkeypatch.setattr(decode, "MAX_MEMBER_BYTES", 4096)
    read = []
    original = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        data = original(self, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    with pytest.raises(DataError, match="decompresses to more than 4096 bytes"):
        decode._read_bytes(decode.ImageRef("images_background/A/character01/2.png", str(archive)))
    assert max(read) == 4097
    decode._close_zips()
