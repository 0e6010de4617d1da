"""FC100 loader on a tiny fixture in the official `cifar-100-python` format, and its restricted unpickler."""

from __future__ import annotations

import builtins
import io
import json
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.data import DataError, DataMissing, load_split
from benchmarks.data.cifar_pickle import load_pickle
from benchmarks.data.fc100 import SUPERCLASSES

COARSE = sorted(s for names in SUPERCLASSES.values() for s in names)  # CIFAR-100's 20, alphabetical as in meta
FINE_PER_COARSE = 5
TRAIN_PER_CLASS, TEST_PER_CLASS = 2, 1


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as cPickle did for the official files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        opcode = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(opcode + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj) -> bytes:
    """Protocol 2 with numpy-1 global names: the globals of the official cifar-100-python files."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def make_cifar(root: Path) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine_names = [f"{c}_{j}".encode() for c in COARSE for j in range(FINE_PER_COARSE)]
    meta = {b"fine_label_names": fine_names, b"coarse_label_names": [c.encode() for c in COARSE]}
    (folder / "meta").write_bytes(py2_pickle(meta))
    rng = np.random.default_rng(2)
    for name, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        fine = [f for f in range(len(fine_names)) for _ in range(per_class)]
        order = rng.permutation(len(fine))  # the official files are not sorted by class
        fine = [fine[i] for i in order]
        batch = {
            b"filenames": [f"img_{i}.png".encode() for i in range(len(fine))],
            b"batch_label": b"training batch 1 of 1" if name == "train" else b"testing batch 1 of 1",
            b"fine_labels": fine,
            b"coarse_labels": [f // FINE_PER_COARSE for f in fine],
            b"data": rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8),
        }
        (folder / name).write_bytes(py2_pickle(batch))
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_cifar(tmp_path / "data")


def test_fixture_uses_exactly_the_globals_of_the_official_files(root):
    globals_used = set()
    for name in ("train", "meta"):
        for opcode, arg, _ in pickletools.genops((root / "cifar-100-python" / name).read_bytes()):
            if opcode.name == "GLOBAL":
                globals_used.add(arg)
    assert globals_used == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


def test_splits_are_the_fc100_superclasses(root, tmp_path):
    counts = {"train": 60, "val": 20, "test": 20}
    seen: set[str] = set()
    for split, n_classes in counts.items():
        data = load_split("fc100", split, root, tmp_path / "cache", progress=False)
        assert data.n_classes == n_classes
        assert {n.rsplit("_", 1)[0] for n in data.class_names} == set(SUPERCLASSES[split])
        assert data.images.shape == (n_classes * 3, 3, 32, 32) and data.images.dtype == torch.uint8
        assert data.class_counts().tolist() == [TRAIN_PER_CLASS + TEST_PER_CLASS] * n_classes
        assert not seen & set(data.class_names)
        seen |= set(data.class_names)
        assert json.loads(json.dumps(data.provenance)) == data.provenance


def test_each_class_pools_train_then_test_images(root, tmp_path):
    data = load_split("fc100", "val", root, tmp_path / "cache", progress=False)
    train = load_pickle(root / "cifar-100-python/train")
    test = load_pickle(root / "cifar-100-python/test")
    fine = data.class_names[0]
    label = [n.decode() for n in load_pickle(root / "cifar-100-python/meta")["fine_label_names"]].index(fine)
    rows_train = [i for i, f in enumerate(train["fine_labels"]) if f == label]
    rows_test = [i for i, f in enumerate(test["fine_labels"]) if f == label]
    expected = np.concatenate([train["data"][rows_train], test["data"][rows_test]]).reshape(-1, 3, 32, 32)
    assert np.array_equal(data.images[data.labels == 0].numpy(), expected)


class Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_pickle_with_a_disallowed_global_is_refused(root, tmp_path):
    marker = tmp_path / "executed"
    path = root / "cifar-100-python/meta"
    path.write_bytes(py2_pickle({b"fine_label_names": Exploit(marker)}))
    with pytest.raises(DataError, match=r"meta: refusing to load the global (__builtin__|builtins)\.exec"):
        load_split("fc100", "train", root, tmp_path / "cache", progress=False)
    assert not marker.exists()


def test_python3_bytes_encoding_global_is_refused(root, tmp_path):
    """A file re-pickled by Python 3 needs _codecs.encode, which the official files never use."""
    path = root / "cifar-100-python/meta"
    path.write_bytes(pickle.dumps({b"fine_label_names": [b"x"], b"coarse_label_names": [b"y"]}, protocol=2))
    with pytest.raises(DataError, match="_codecs.encode"):
        load_pickle(path)


def test_truncated_pickle_names_the_file(root, tmp_path):
    path = root / "cifar-100-python/test"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cifar-100-python/test: not a readable CIFAR-100 pickle"):
        load_split("fc100", "test", root, tmp_path / "cache", progress=False)


def test_wrong_array_type_is_an_error(root, tmp_path):
    path = root / "cifar-100-python/train"
    batch = load_pickle(path)
    batch = {k.encode(): v for k, v in batch.items()}
    batch[b"data"] = batch[b"data"].astype(np.float64)
    path.write_bytes(py2_pickle(batch))
    with pytest.raises(DataError, match=r"train: 'data' must be a uint8 array"):
        load_split("fc100", "train", root, tmp_path / "cache", progress=False)


def test_missing_files_name_layout_and_source(root, tmp_path):
    with pytest.raises(DataMissing, match="cifar-100-python.*cs.toronto.edu"):
        load_split("fc100", "val", tmp_path / "nothing", tmp_path / "cache", progress=False)
    (root / "cifar-100-python/meta").unlink()
    with pytest.raises(DataMissing, match="cifar-100-python/meta not found"):
        load_split("fc100", "val", root, tmp_path / "cache", progress=False)


def test_embedded_superclasses_match_the_published_split(data_root):
    folder = data_root / "cifar100" / "splits" / "fc100"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    for split in ("train", "val", "test"):
        assert tuple(json.loads((folder / f"{split}.json").read_text())) == SUPERCLASSES[split]


def test_a_superclass_listed_twice_is_an_error(root, tmp_path, monkeypatch):
    """Its fine classes would be two classes each with the same images (or one class in two splits)."""
    from benchmarks.data import fc100

    twice = {**SUPERCLASSES, "test": (*SUPERCLASSES["test"], "insects")}
    monkeypatch.setattr(fc100, "SUPERCLASSES", twice)
    with pytest.raises(DataError, match="SUPERCLASSES\\['test'\\] entry 5 \\('insects'\\) is already listed"):
        load_split("fc100", "test", root, tmp_path / "cache", progress=False)
