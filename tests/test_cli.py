"""The command line refuses what it cannot honour before any work starts, in one line naming the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.runs.config import DEFAULTS, HELP

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key", ["method=amfs", "seed=3"])
def test_keys_a_grid_enumerates_cannot_be_overridden(key: str, capsys, tmp_path):
    assert main(["run", "--grid", "quick", "--results", str(tmp_path), "--set", key]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --set: {key.split('=')[0]} cannot be overridden") and "--only" in err
    assert not (tmp_path / "quick").exists()  # nothing ran


@pytest.mark.parametrize(
    "device, message",
    [("gpu", "is not a device: use cpu, cuda"), ("xla", "runs on cpu or cuda"), ("cuda", "sees no CUDA device")],
)
def test_unusable_devices_are_refused_before_any_work(device: str, message: str, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    for command in (["run", "--grid", "quick", "--results", str(tmp_path)], ["perf", "--reports", str(tmp_path)]):
        assert main([*command, "--device", device]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    assert not any(tmp_path.iterdir())


def test_an_only_pattern_matching_nothing_is_an_error(capsys, tmp_path):
    assert main(["list", "--grid", "quick", "--results", str(tmp_path), "--only", "no-such-run"]) == 2
    assert "matches no run of grid quick; its run keys look like" in capsys.readouterr().err


def test_settings_explains_every_setting_and_the_protocols(capsys):
    assert set(HELP) == set(DEFAULTS)
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    for key in DEFAULTS:
        assert f"\n{key} " in out
    assert "'transductive' | 'inductive'" in out  # valid values
    assert "mini-imagenet  5w5s" in out and "meta_batch=2" in out  # the protocol per dataset


def test_a_closed_pipe_ends_the_listing_quietly(tmp_path):
    """`list | head`: the reader goes away (here at once, `true` reads nothing) before the listing is
    written; the command ends without a BrokenPipeError traceback."""
    done = subprocess.run(
        f"{sys.executable} -m benchmarks list --grid quick --results {tmp_path} | true",
        shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "BrokenPipeError" not in done.stderr and "Traceback" not in done.stderr, done.stderr
