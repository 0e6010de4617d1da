"""`python -m benchmarks report` and `python -m benchmarks claims`.

Exit codes: 0 success (a refuted paper claim is a finding, not a failure); 1 with --strict when a
claim is refuted, and when `report` wrote nothing (no records to report, or it refused to replace a
report built from more finished runs without --force); 2 when the grid name is not a plain name or
the store breaks an invariant of the suite (malformed record, missing field, paired runs on different
episodes): the message names the file and the fix.

`report` writes only inside <reports>/<grid>/: its README.md and the figures it draws. A PNG there is
deleted only when its name is one the report draws (figures.is_figure_name) and this report does
not draw it any more; every other file is left alone.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from benchmarks.common.files import atomic_write_bytes
from benchmarks.report import comparison_figures, learning_figures
from benchmarks.report import figures as fig
from benchmarks.report.claims import evaluate_claims
from benchmarks.report.labels import REGULARIZER_VARIANTS, cell_label, meta_batch_of_variant
from benchmarks.report.readme import HEADING, claims_section, render_readme
from benchmarks.report.runs import RunSet, load_runs
from benchmarks.report.verdicts import REFUTED, VERDICTS, ClaimResult
from benchmarks.runs.config import ConfigError
from benchmarks.runs.grids import check_grid_name
from benchmarks.runs.store import ResultsStore, StoreError

EXIT_REFUTED = 1
EXIT_NOTHING_WRITTEN = 1
EXIT_INVARIANT = 2
_FINISHED = re.compile(r"^Runs: (\d+) finished", re.MULTILINE)


def build_figures(runs: RunSet) -> tuple[list[fig.RenderedFigure], list[str]]:
    """Every figure the grid's data allows, and a line for each one that was not drawn."""
    figures: list[fig.RenderedFigure] = []
    skipped: list[str] = []
    settings = [(d, s) for d in runs.datasets() for s in runs.settings(d)]
    for dataset, setting in settings:
        drawn = learning_figures.validation_figure(runs, dataset, setting)
        if drawn:
            figures.append(drawn)
        else:
            skipped.append(f"validation curves, {cell_label(dataset, setting)}: no run recorded a validation curve")
    regularizer = [
        (d, s) for d, s in settings if any(v in REGULARIZER_VARIANTS[1:] for v in runs.variants(d, s, "amfs"))
    ]
    meta_batch = [
        (d, s)
        for d, s in settings
        if any(meta_batch_of_variant(v) is not None for m, v in runs.rows(d, s) if m in ("maml", "o-amfs"))
    ]
    for dataset, setting in regularizer:
        drawn = learning_figures.regularizer_figure(runs, dataset, setting)
        if drawn:
            figures.append(drawn)
        else:
            skipped.append(f"regularizer ablation, {cell_label(dataset, setting)}: fewer than two AMFS variants")
    if not regularizer:
        skipped.append("regularizer ablation: no AMFS reg-none / reg-mu-only / reg-gamma-only runs (ablations grid)")
    for dataset, setting in meta_batch:
        drawn = learning_figures.meta_batch_figure(runs, dataset, setting)
        if drawn:
            figures.append(drawn)
        else:
            skipped.append(
                f"meta-batch sizes, {cell_label(dataset, setting)}: fewer than two sizes with both O-AMFS and MAML"
            )
    if not meta_batch:
        skipped.append("meta-batch sizes: no MAML / O-AMFS meta-batch-n runs (ablations grid)")
    cost = comparison_figures.cost_figures(runs)
    figures += cost
    if not cost:
        skipped.append("time and memory: no finished default run recorded timings")
    paired = comparison_figures.paired_vs_maml_figures(runs)
    figures += paired
    if not paired:
        skipped.append("paired difference against MAML: no I-AMFS, O-AMFS or AMFS run shares seeds with a MAML run")
    return figures, skipped


def write_report(runs: RunSet, out_dir: Path) -> Path:
    """README.md and the figures of a grid into out_dir; figures this report no longer draws are removed
    (only files whose names the report draws: see the module docstring)."""
    claims = evaluate_claims(runs)
    figures, skipped = build_figures(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {f.name for f in figures}
    for stale in sorted(out_dir.glob("*.png")):
        if stale.name not in names and fig.is_figure_name(stale.name) and stale.is_file():
            stale.unlink()
    for figure in figures:
        atomic_write_bytes(out_dir / figure.name, figure.png)
    readme = out_dir / "README.md"
    atomic_write_bytes(readme, render_readme(runs, claims, figures, skipped).encode())
    return readme


def _grid_name(grid: str) -> str | None:
    try:
        return check_grid_name(grid)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def _has_records(grid: str, results_dir: Path) -> bool:
    """Whether results_dir/grid holds any record; says what to do when it does not."""
    runs_dir = ResultsStore(results_dir, grid).runs_dir
    if runs_dir.is_dir() and any(runs_dir.glob("*.json")):
        return True
    print(
        f"error: no records under {runs_dir}: nothing to report; run `python -m benchmarks run --grid {grid}` "
        "or pass the --results folder that holds them. Nothing written.",
        file=sys.stderr,
    )
    return False


def _load(grid: str, results_dir: Path) -> RunSet | None:
    try:
        return load_runs(results_dir, grid)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def replacement_refusal(readme: Path, grid: str, finished: int) -> str | None:
    """Why writing a report of `finished` runs over the existing readme would lose results; None when it
    would not (no readme, or one built from as many finished runs or fewer)."""
    if not readme.exists():
        return None
    text = readme.read_text(errors="replace")
    if not text.startswith(HEADING.format(grid=grid)):
        return f"{readme} is not a report of grid {grid} written by this command"
    found = _FINISHED.search(text)
    if found is None:
        return f"{readme} does not say how many finished runs it was built from"
    before = int(found.group(1))
    if before > finished:
        return f"{readme} was built from {before} finished runs and these results hold {finished}"
    return None


def report(grid: str, results_dir: Path, reports_dir: Path, force: bool = False) -> int:
    """Write reports_dir/grid/README.md and its figures from the store. Refuses (nothing written) when there
    are no records, and, unless force, when the report there was built from more finished runs."""
    if _grid_name(grid) is None:
        return EXIT_INVARIANT
    if not _has_records(grid, results_dir):
        return EXIT_NOTHING_WRITTEN
    runs = _load(grid, results_dir)
    if runs is None:
        return EXIT_INVARIANT
    out_dir = reports_dir / grid
    refusal = replacement_refusal(out_dir / "README.md", grid, len(runs.done))
    if refusal and not force:
        print(
            f"error: {refusal}; refusing to replace it (pass --force to replace it, or --reports to write "
            "elsewhere). Nothing written.",
            file=sys.stderr,
        )
        return EXIT_NOTHING_WRITTEN
    readme = write_report(runs, out_dir)
    print(f"wrote {readme}: {len(runs.done)} finished runs, {len(runs.failed)} did not finish")
    return 0


def format_claims(claims: list[ClaimResult]) -> str:
    return claims_section(claims, heading="#")


def claims(grid: str, results_dir: Path, strict: bool) -> int:
    """Print the claims table; with strict, exit 1 when a claim is refuted."""
    if _grid_name(grid) is None:
        return EXIT_INVARIANT
    runs = _load(grid, results_dir)
    if runs is None:
        return EXIT_INVARIANT
    if not runs.done and not runs.failed:
        print(
            f"warning: no records under {results_dir / grid / 'runs'}; every claim is 'not run'. "
            f"Run `python -m benchmarks run --grid {grid}` or pass --results",
            file=sys.stderr,
        )
    results = evaluate_claims(runs)
    print(format_claims(results))
    refuted = [c.cid for c in results if c.verdict == REFUTED]
    counts = Counter(c.verdict for c in results)
    tally = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
    print(f"\nclaims of grid {grid} from {len(runs.done)} finished runs: {tally}")
    if strict and refuted:
        print(f"refuted (--strict): {', '.join(refuted)}", file=sys.stderr)
        return EXIT_REFUTED
    return 0
