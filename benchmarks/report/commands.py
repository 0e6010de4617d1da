"""`python -m benchmarks report` and `python -m benchmarks claims`.

Exit codes: 0 success (a refuted paper claim is a finding, not a failure); 1 with --strict when a
claim is refuted; 2 when the store breaks an invariant of the suite (malformed record, missing
field, paired runs on different episodes): the message names the file and the fix.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.common.files import atomic_write_bytes
from benchmarks.report import figures as fig
from benchmarks.report.claims import REFUTED, ClaimResult, evaluate_claims
from benchmarks.report.labels import REGULARIZER_VARIANTS, cell_label, meta_batch_of_variant
from benchmarks.report.readme import claims_section, render_readme
from benchmarks.report.runs import RunSet, load_runs
from benchmarks.runs.store import StoreError

EXIT_REFUTED = 1
EXIT_INVARIANT = 2


def build_figures(runs: RunSet) -> tuple[list[fig.RenderedFigure], list[str]]:
    """Every figure the grid's data allows, and a line for each one that was not drawn."""
    figures: list[fig.RenderedFigure] = []
    skipped: list[str] = []
    settings = [(d, s) for d in runs.datasets() for s in runs.settings(d)]
    for dataset, setting in settings:
        drawn = fig.validation_figure(runs, dataset, setting)
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
        drawn = fig.regularizer_figure(runs, dataset, setting)
        if drawn:
            figures.append(drawn)
        else:
            skipped.append(f"regularizer ablation, {cell_label(dataset, setting)}: fewer than two AMFS variants")
    if not regularizer:
        skipped.append("regularizer ablation: no AMFS reg-none / reg-mu-only / reg-gamma-only runs (ablations grid)")
    for dataset, setting in meta_batch:
        drawn = fig.meta_batch_figure(runs, dataset, setting)
        if drawn:
            figures.append(drawn)
        else:
            skipped.append(
                f"meta-batch sizes, {cell_label(dataset, setting)}: fewer than two sizes with both O-AMFS and MAML"
            )
    if not meta_batch:
        skipped.append("meta-batch sizes: no MAML / O-AMFS meta-batch-n runs (ablations grid)")
    cost = fig.cost_figures(runs)
    figures += cost
    if not cost:
        skipped.append("time and memory: no finished default run recorded timings")
    paired = fig.paired_vs_maml_figures(runs)
    figures += paired
    if not paired:
        skipped.append("paired difference against MAML: no I-AMFS, O-AMFS or AMFS run shares seeds with a MAML run")
    return figures, skipped


def write_report(runs: RunSet, out_dir: Path) -> Path:
    """README.md and the figures of a grid into out_dir (stale figures of the names it writes are removed)."""
    claims = evaluate_claims(runs)
    figures, skipped = build_figures(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {f.name for f in figures}
    for stale in sorted(out_dir.glob("*.png")):
        if stale.name not in names and fig.is_figure_name(stale.name):
            stale.unlink()
    for figure in figures:
        atomic_write_bytes(out_dir / figure.name, figure.png)
    readme = out_dir / "README.md"
    atomic_write_bytes(readme, render_readme(runs, claims, figures, skipped).encode())
    return readme


def _load(grid: str, results_dir: Path) -> RunSet | None:
    try:
        runs = load_runs(results_dir, grid)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    if not runs.done and not runs.failed:
        print(
            f"warning: no records under {results_dir / grid / 'runs'}; "
            f"run `python -m benchmarks run --grid {grid}` or pass --results",
            file=sys.stderr,
        )
    return runs


def report(grid: str, results_dir: Path, reports_dir: Path) -> int:
    """Write reports_dir/grid/README.md and its figures from the store."""
    runs = _load(grid, results_dir)
    if runs is None:
        return EXIT_INVARIANT
    readme = write_report(runs, reports_dir / grid)
    print(f"wrote {readme}")
    return 0


def format_claims(claims: list[ClaimResult]) -> str:
    return claims_section(claims, heading="#")


def claims(grid: str, results_dir: Path, strict: bool) -> int:
    """Print the claims table; with strict, exit 1 when a claim is refuted."""
    runs = _load(grid, results_dir)
    if runs is None:
        return EXIT_INVARIANT
    results = evaluate_claims(runs)
    print(format_claims(results))
    refuted = [c.cid for c in results if c.verdict == REFUTED]
    if strict and refuted:
        print(f"refuted (--strict): {', '.join(refuted)}", file=sys.stderr)
        return EXIT_REFUTED
    return 0
