"""Checked tensor files: content sha256 verified on load, plain values only, no code run on load."""

from __future__ import annotations

import io

import pytest
import torch

from benchmarks.common.checked import ChecksumError, checked_bytes, content_sha256, load_checked, save_checked


class Hostile:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


PAYLOAD = {"images": torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4), "names": ["a", "b"], 3: (1.5, None)}


def test_round_trip_gives_the_payload_and_its_sha256(tmp_path):
    digest = save_checked(tmp_path / "f.pt", PAYLOAD)
    loaded, found = load_checked(tmp_path / "f.pt")
    assert found == digest == content_sha256(PAYLOAD)
    assert torch.equal(loaded["images"], PAYLOAD["images"]) and loaded["names"] == ["a", "b"]
    assert load_checked(tmp_path / "f.pt", mmap=True)[1] == digest


def test_one_changed_byte_of_a_tensor_is_detected(tmp_path):
    save_checked(tmp_path / "f.pt", PAYLOAD)
    stored = torch.load(tmp_path / "f.pt", weights_only=True)
    stored["payload"]["images"][1, 2, 3] = 0
    torch.save(stored, tmp_path / "f.pt")
    with pytest.raises(ChecksumError, match="f.pt: content sha256 .* does not match the recorded"):
        load_checked(tmp_path / "f.pt")


def test_a_truncated_or_foreign_file_is_refused(tmp_path):
    save_checked(tmp_path / "f.pt", PAYLOAD)
    data = (tmp_path / "f.pt").read_bytes()
    (tmp_path / "f.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ChecksumError, match="unreadable"):
        load_checked(tmp_path / "f.pt")
    torch.save({"images": PAYLOAD["images"]}, tmp_path / "g.pt")
    with pytest.raises(ChecksumError, match="not a checked file"):
        load_checked(tmp_path / "g.pt")


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"format": "amfs-checked-1", "sha256": "", "payload": Hostile(marker)}, tmp_path / "f.pt")
    with pytest.raises(ChecksumError, match="unreadable or not a plain-tensor file"):
        load_checked(tmp_path / "f.pt")
    assert not marker.exists()


def test_only_plain_values_are_written():
    with pytest.raises(TypeError, match="plain values only"):
        checked_bytes({"x": object()})
    data, _ = checked_bytes({"v": torch.__version__})  # a str subclass: written as a plain str
    assert type(torch.load(io.BytesIO(data), weights_only=True)["payload"]["v"]) is str
