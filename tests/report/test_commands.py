"""`report` writes only inside <reports>/<grid>/, refuses grid names that are not plain names, never
replaces a report with one of fewer finished runs (or of nothing) unless forced, and exits non-zero
when it wrote nothing."""

from __future__ import annotations

import os
import stat

import pytest

from benchmarks.cli import main
from benchmarks.report import commands
from support.records import make_record, write_records

RECORDS = [
    make_record(method, "omniglot", "5w1s", seed, effect=effect, reduced=True)
    for method, effect in (("maml", 0.0), ("amfs", 0.05))
    for seed in (0, 1)
]


def snapshot(folder):
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def report(tmp_path, grid: str, *extra: str) -> int:
    results, reports = str(tmp_path / "results"), str(tmp_path / "reports")
    return main(["report", "--grid", grid, "--results", results, "--reports", reports, *extra])


@pytest.mark.parametrize("grid", ["..", "../outside", "<absolute>", "a/../../b", ".hidden"])
def test_a_grid_name_that_is_not_plain_writes_and_deletes_nothing(tmp_path, capsys, grid):
    grid = grid.replace("<absolute>", str(tmp_path / "elsewhere"))
    write_records(tmp_path / "results", "quick", RECORDS)
    (tmp_path / "README.md").write_text("mine")
    (tmp_path / "figure.png").write_bytes(b"mine")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "README.md").write_text("mine")
    before = snapshot(tmp_path)
    assert report(tmp_path, grid) == commands.EXIT_INVARIANT
    assert "not a plain name" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
    assert main(["claims", "--grid", grid, "--results", str(tmp_path / "results")]) == commands.EXIT_INVARIANT


def test_without_records_nothing_is_written_and_the_committed_report_stays(tmp_path, capsys):
    """A fresh clone has reports/quick/ committed and no results/: report must not replace it with '0 finished'."""
    write_records(tmp_path / "results", "quick", RECORDS)
    assert report(tmp_path, "quick") == 0
    before = snapshot(tmp_path / "reports")
    for results in (tmp_path / "absent", tmp_path / "empty"):
        (tmp_path / "empty" / "quick" / "runs").mkdir(parents=True, exist_ok=True)
        code = main(["report", "--grid", "quick", "--results", str(results), "--reports", str(tmp_path / "reports")])
        assert code == commands.EXIT_NOTHING_WRITTEN != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: no records under") and err[-1].endswith("Nothing written.")
        assert snapshot(tmp_path / "reports") == before


def test_fewer_finished_runs_do_not_replace_a_report_unless_forced(tmp_path, capsys):
    write_records(tmp_path / "results", "quick", RECORDS)
    assert report(tmp_path, "quick") == 0
    before = snapshot(tmp_path / "reports")
    (tmp_path / "results" / "quick" / "runs" / f"{RECORDS[0]['run_id']}.json").unlink()
    assert report(tmp_path, "quick") == commands.EXIT_NOTHING_WRITTEN
    err = capsys.readouterr().err
    assert "was built from 4 finished runs and these results hold 3" in err and "--force" in err
    assert snapshot(tmp_path / "reports") == before
    assert report(tmp_path, "quick", "--force") == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].endswith("README.md: 3 finished runs, 0 did not finish")
    assert "Runs: 3 finished" in (tmp_path / "reports" / "quick" / "README.md").read_text()


def test_as_many_or_more_finished_runs_replace_the_report(tmp_path):
    write_records(tmp_path / "results", "quick", RECORDS[:2])
    assert report(tmp_path, "quick") == 0
    write_records(tmp_path / "results", "quick", RECORDS)
    assert report(tmp_path, "quick") == 0
    assert report(tmp_path, "quick") == 0
    assert "Runs: 4 finished" in (tmp_path / "reports" / "quick" / "README.md").read_text()


def test_a_readme_the_report_did_not_write_is_not_replaced_unless_forced(tmp_path, capsys):
    write_records(tmp_path / "results", "quick", RECORDS)
    (tmp_path / "reports" / "quick").mkdir(parents=True)
    (tmp_path / "reports" / "quick" / "README.md").write_text("# Notes of my own\n")
    assert report(tmp_path, "quick") == commands.EXIT_NOTHING_WRITTEN
    assert "is not a report of grid quick written by this command" in capsys.readouterr().err
    assert (tmp_path / "reports" / "quick" / "README.md").read_text() == "# Notes of my own\n"


def test_report_files_are_readable_by_the_group_and_others(tmp_path):
    write_records(tmp_path / "results", "quick", RECORDS)
    previous = os.umask(0o022)
    try:
        assert report(tmp_path, "quick") == 0
    finally:
        os.umask(previous)
    files = list((tmp_path / "reports" / "quick").iterdir())
    assert any(p.suffix == ".png" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
