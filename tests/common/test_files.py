"""Atomic writes: the mode the umask gives, temporary files of interrupted writes cleaned, plain names."""

from __future__ import annotations

import os
import stat
import time

import pytest

from benchmarks.common.files import atomic_write_bytes, is_plain_name, is_temporary, remove_orphan_temporaries
from benchmarks.runs.store import ResultsStore, StoreError


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_files_get_the_mode_the_umask_gives_not_0600(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode


def test_a_failed_write_leaves_no_temporary_and_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_opening_a_store_removes_only_old_temporaries_of_interrupted_writes(tmp_path):
    store = ResultsStore(tmp_path, "grid")
    folders = [store.runs_dir, store.root / "checkpoints", store.root / "running"]
    old = time.time() - 3600
    kept, removed = [], []
    for folder in folders:
        folder.mkdir(parents=True)
        orphan = folder / ".run.json.k3j_x9ab.tmp"  # what a write killed mid-way leaves
        young = folder / ".run.json.abcdefgh.tmp"  # may belong to a write in progress
        others = [folder / "run.json", folder / ".hidden", folder / ".run.json.abc.tmp", folder / "x.tmp"]
        for path in (orphan, young, *others):
            path.write_bytes(b"x")
            if path is not young:
                os.utime(path, (old, old))
        removed.append(orphan)
        kept += [young, *others]
    (tmp_path / ".stray.json.abcdefgh.tmp").write_bytes(b"outside the store")
    os.utime(tmp_path / ".stray.json.abcdefgh.tmp", (old, old))
    kept.append(tmp_path / ".stray.json.abcdefgh.tmp")
    ResultsStore(tmp_path, "grid")
    assert all(p.exists() for p in kept) and not any(p.exists() for p in removed)
    assert remove_orphan_temporaries(tmp_path / "absent") == []
    assert is_temporary(".a.pt.12345678.tmp") and not is_temporary("a.pt")


@pytest.mark.parametrize("name", ["quick", "omniglot-tf32", "a_b.c", "v2"])
def test_plain_names(name):
    assert is_plain_name(name)


@pytest.mark.parametrize("name", ["", "..", ".", "../x", "/etc", "a/b", ".hidden", "a b", "x\\y", "~", "a\n"])
def test_names_that_leave_their_folder_are_not_plain(name):
    assert not is_plain_name(name)
    with pytest.raises(StoreError, match="not a plain name"):
        ResultsStore("results", name)
