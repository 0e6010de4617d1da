"""`python -m benchmarks data check | prepare` on fixture data roots."""

from __future__ import annotations

import os

import pytest

from benchmarks.cli import main
from benchmarks.data import commands, omniglot
from support.datasets import SIZES, make_folders, make_mini, make_zips


@pytest.fixture(autouse=True)
def small_omniglot(monkeypatch):
    monkeypatch.setattr(omniglot, "SPLIT_SIZES", SIZES)


def rows(output: str) -> dict[tuple[str, str], list[str]]:
    """The check table as {(dataset, split): [status, classes, images..., checksum..., cache]}."""
    table = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) >= 7 and cells[0] in ("omniglot", "mini-imagenet", "cub", "fc100", "sinusoid"):
            table[(cells[0], cells[1])] = cells[2:]
    return table


def test_check_on_an_empty_root_lists_sources_and_layouts(tmp_path, capsys):
    assert commands.check(tmp_path, tmp_path / "cache") == 0
    out = capsys.readouterr().out
    table = rows(out)
    for dataset in ("omniglot", "mini-imagenet", "cub", "fc100"):
        for split in ("train", "val", "test"):
            assert table[(dataset, split)][0] == "missing"
    assert table[("sinusoid", "all")][0] == "generated"
    for source in ("github.com/brendenlake/omniglot", "meta-learning-lstm", "vision.caltech.edu", "cs.toronto.edu"):
        assert source in out
    for layout in ("characterNN/*.png", "filename,label", "image_class_labels.txt", "train, test and meta pickles"):
        assert layout in out


def test_prepare_builds_every_cache_and_check_reports_it(tmp_path, capsys):
    root = make_mini(make_folders(tmp_path / "data"))
    cache_dir = tmp_path / "cache"
    assert commands.check(root, cache_dir) == 0
    table = rows(capsys.readouterr().out)
    assert table[("omniglot", "train")][:3] == ["found", "16", "320"]
    assert table[("omniglot", "train")][-1] == "absent"
    assert table[("mini-imagenet", "val")][:3] == ["found", "2", "12"]

    assert commands.prepare(root, cache_dir, None, download=False) == 0  # cub and fc100 absent: skipped
    out = capsys.readouterr().out
    assert "omniglot test: 8 classes, 160 images; cache built" in out and "cub: missing" in out
    assert commands.check(root, cache_dir) == 0
    table = rows(capsys.readouterr().out)
    assert all(table[(d, s)][-1] == "built" for d in ("omniglot", "mini-imagenet") for s in ("train", "val", "test"))

    changed = next((root / "omniglot/images_evaluation").rglob("*.png"))
    os.utime(changed, ns=(0, changed.stat().st_mtime_ns + 10**9))
    commands.check(root, cache_dir)
    table = rows(capsys.readouterr().out)
    assert [table[("omniglot", s)][-1] for s in ("train", "val", "test")] == ["stale"] * 3
    assert table[("mini-imagenet", "val")][-1] == "built"


def test_partial_split_is_reported(tmp_path, capsys):
    root = make_mini(tmp_path / "data")
    (root / "mini-imagenet/images/n00100000000.jpg").unlink()
    commands.check(root, tmp_path / "cache")
    assert rows(capsys.readouterr().out)[("mini-imagenet", "train")][:5] == ["partial", "3", "17", "of", "18"]


def test_prepare_of_a_missing_named_dataset_fails(tmp_path, capsys):
    assert commands.prepare(tmp_path, tmp_path / "cache", "cub", download=False) == 1
    assert "CUB_200_2011" in capsys.readouterr().err


def test_prepare_downloads_omniglot_then_builds(tmp_path, monkeypatch, capsys):
    md5 = make_zips(make_folders(tmp_path / "source"), tmp_path / "server")
    monkeypatch.setattr(omniglot, "BASE_URL", (tmp_path / "server").as_uri())
    monkeypatch.setattr(omniglot, "ZIP_MD5", md5)
    root = tmp_path / "data"
    assert commands.prepare(root, tmp_path / "cache", "omniglot", download=True) == 0
    out = capsys.readouterr().out
    assert "omniglot images_background: downloaded" in out and "omniglot train: 16 classes" in out
    commands.check(root, tmp_path / "cache")
    table = rows(capsys.readouterr().out)
    assert table[("omniglot", "val")][3:6] == ["background.zip", "ok,", "evaluation.zip"]


def test_prepare_download_with_a_bad_checksum_writes_nothing(tmp_path, monkeypatch, capsys):
    make_zips(make_folders(tmp_path / "source"), tmp_path / "server")
    monkeypatch.setattr(omniglot, "BASE_URL", (tmp_path / "server").as_uri())  # official md5s: mismatch
    assert commands.prepare(tmp_path / "data", tmp_path / "cache", "omniglot", download=True) == 1
    assert "nothing was written" in capsys.readouterr().err
    assert not list((tmp_path / "data").rglob("*.zip"))


def test_cli_dispatches_data_check(tmp_path, capsys):
    assert main(["data", "check", "--data-root", str(tmp_path), "--cache-dir", str(tmp_path / "c")]) == 0
    assert f"data root: {tmp_path}" in capsys.readouterr().out


def test_unknown_dataset_is_refused(tmp_path, capsys):
    assert commands.prepare(tmp_path, tmp_path / "cache", "imagenet", download=False) == 2
    assert "valid: omniglot, mini-imagenet, cub, fc100" in capsys.readouterr().err


def test_check_calls_a_split_served_from_its_cache_alone_cache_only(tmp_path, capsys):
    """A compute node given only the caches: `data check` says the runs will use them, not 'missing'."""
    root = make_mini(tmp_path / "data")
    assert commands.prepare(root, tmp_path / "cache", "mini-imagenet", download=False) == 0
    capsys.readouterr()
    assert commands.check(tmp_path / "empty", tmp_path / "cache") == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("mini-imagenet")]
    assert [r[:4] for r in rows] == [["mini-imagenet", s, "cache", "only"] for s in ("train", "val", "test")]
