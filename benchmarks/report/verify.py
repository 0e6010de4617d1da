"""`python -m benchmarks evidence [--check]`: write the claims ledger (reports/README.md), or check
that it and every grid report whose records are committed (reports/<grid>/results/<grid>/runs/)
follow from those records, byte for byte.

Exit codes: 0 written or up to date; 1 with --check when a file differs (each one named); 2 when
the stores are empty or unreadable (nothing is written).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks.common.files import atomic_write_bytes
from benchmarks.report.commands import write_report
from benchmarks.report.evidence import Evidence, EvidenceError, find_stores
from benchmarks.report.ledger import render_ledger
from benchmarks.report.runs import load_runs
from benchmarks.runs.store import StoreError

EXIT_DIFFERS = 1
EXIT_UNREADABLE = 2
LEDGER = "README.md"


def committed_reports(reports_dir: Path) -> list[tuple[str, Path, Path]]:
    """(grid, results folder, report folder) of each reports/<grid>/ holding its own records."""
    found = []
    for report_dir in sorted(p for p in reports_dir.iterdir() if p.is_dir()):
        if (report_dir / "results" / report_dir.name / "runs").is_dir():
            found.append((report_dir.name, report_dir / "results", report_dir))
    return found


def check_report(grid: str, results: Path, report_dir: Path) -> list[str]:
    """The files of report_dir that differ from a report regenerated from results (README.md and the
    figures; a committed figure the records no longer give is stale)."""
    fix = f"regenerate it: python -m benchmarks report --grid {grid} --results {results} --reports {report_dir.parent}"
    runs = load_runs(results, grid)
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / grid
        write_report(runs, fresh)
        generated = sorted(p.name for p in fresh.iterdir() if p.is_file())
        for name in generated:
            committed = report_dir / name
            if not committed.exists():
                problems.append(f"{committed}: missing, its records give it; {fix}")
            elif committed.read_bytes() != (fresh / name).read_bytes():
                note = " (figures also depend on the matplotlib installation)" if name.endswith(".png") else ""
                problems.append(f"{committed}: differs from what its records give{note}; {fix}")
    for stale in sorted(report_dir.glob("*.png")):
        if stale.name not in generated:
            problems.append(f"{stale}: a figure its records no longer give; {fix}")
    return problems


def evidence(results: list[Path], reports_dir: Path, check: bool) -> int:
    """Write reports_dir/README.md from every store, or (check) compare it and the committed grid
    reports with what their records give."""
    try:
        page = render_ledger(Evidence(find_stores(reports_dir, results)))
    except EvidenceError as e:
        print(f"error: {e}", file=sys.stderr)
        print(f"evidence: {reports_dir / LEDGER} not written", file=sys.stderr)
        return EXIT_UNREADABLE
    target = reports_dir / LEDGER
    if not check:
        atomic_write_bytes(target, page.encode())
        print(f"wrote {target}")
        return 0
    problems = []
    if not target.exists():
        problems.append(f"{target}: missing; write it with python -m benchmarks evidence")
    elif target.read_bytes() != page.encode():
        problems.append(
            f"{target}: differs from what the records give; regenerate it with python -m benchmarks evidence"
        )
    checked = [target]
    for grid, results_dir, report_dir in committed_reports(reports_dir):
        try:
            problems += check_report(grid, results_dir, report_dir)
        except StoreError as e:
            print(f"error: {e}", file=sys.stderr)
            print(f"evidence --check: the records of {report_dir} cannot be read", file=sys.stderr)
            return EXIT_UNREADABLE
        checked.append(report_dir / "README.md")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"evidence --check: {len(problems)} file(s) differ from what the committed records give", file=sys.stderr)
        return EXIT_DIFFERS
    print(
        f"evidence --check: {len(checked)} reports follow from the committed records: " + ", ".join(map(str, checked))
    )
    return 0
