"""Result tables of a grid: one per dataset and setting (accuracy in %, or MSE for the sinusoid), with
the published numbers beside ours, and one of timings and memory."""

from __future__ import annotations

import statistics

from benchmarks.report import published
from benchmarks.report.compare import paired_difference, summarize
from benchmarks.report.formatting import DASH, interval, mean_pm, number, table
from benchmarks.report.labels import PARTIAL_MARK, REDUCED_MARK, cell_label, method_name, method_order, setting_order
from benchmarks.report.runs import RunSet

DIGITS = {"accuracy": 2, "mse": 3}


def _compact(values: tuple[int, ...]) -> str:
    """'500' when every seed agrees, else 'min–max'."""
    if not values:
        return DASH
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"


def result_table(runs: RunSet, dataset: str, setting: str) -> str:
    """Markdown table of every method variant of one dataset setting."""
    rows = []
    metric = "accuracy"
    maml = runs.cell(dataset, setting, "maml")
    for method, variant in runs.rows(dataset, setting):
        cell = runs.cell(dataset, setting, method, variant)
        summary = summarize(cell)
        metric = summary.metric
        digits = DIGITS[summary.metric]
        delta = DASH
        if not (method == "maml" and variant == "default"):
            paired = paired_difference(cell, maml)
            if paired is not None:
                delta = interval(paired.ci, digits)
        refs = published.published_for(method, dataset, setting) if variant == "default" else []
        marks = (REDUCED_MARK if summary.reduced else "") + (PARTIAL_MARK if summary.partial_splits else "")
        rows.append(
            (
                method_name(method),
                variant,
                mean_pm(summary.pooled.mean, summary.pooled.ci95, digits),
                number(summary.spread, digits),
                delta,
                str(len(summary.seeds)),
                _compact(summary.episodes_per_seed),
                _compact(summary.iterations),
                _compact(summary.best_iterations),
                "; ".join(p.display() for p in refs) or DASH,
                marks or DASH,
            )
        )
    if metric == "mse":
        value, spread, delta = "test MSE ± 95% CI", "seed spread (MSE)", "Δ vs MAML (MSE, paired 95% CI)"
    else:
        value, spread, delta = "accuracy % ± 95% CI", "seed spread (pp)", "Δ vs MAML (pp, paired 95% CI)"
    headers = (
        "method",
        "variant",
        value,
        spread,
        delta,
        "seeds",
        "episodes/seed",
        "iterations",
        "selected iteration",
        "published %",
        "flags",
    )
    return table(headers, rows)


def other_references(runs: RunSet, dataset: str, setting: str) -> list[str]:
    """Published results of methods this grid did not run in a setting, one line each."""
    ran = {m for m, _ in runs.rows(dataset, setting)}
    return [
        f"{method_name(p.method)}: {p.display()}"
        for p in published.references_in(dataset, setting)
        if p.method not in ran
    ]


def timing_table(runs: RunSet) -> str | None:
    """Median over seeds of each timing measure, per default method run, dataset setting and device."""
    rows = []
    for dataset in runs.datasets():
        for setting in sorted(runs.settings(dataset), key=setting_order):
            methods = sorted({m for m, v in runs.rows(dataset, setting) if v == "default"}, key=method_order)
            for method in methods:
                by_device: dict[tuple[str, str], list] = {}
                for run in runs.cell(dataset, setting, method).values():
                    by_device.setdefault(run.device, []).append(run)
                for device in sorted(by_device):
                    cells = []
                    for measure in ("meta_iteration_ms_median", "adaptation_ms_per_episode", "peak_memory_mb"):
                        values = [r.timing.get(measure) for r in by_device[device]]
                        values = [float(v) for v in values if isinstance(v, int | float)]
                        digits = 0 if measure == "peak_memory_mb" else 2
                        cells.append(number(statistics.median(values), digits) if values else DASH)
                    rows.append(
                        (cell_label(dataset, setting), method_name(method), f"{device[1]} ({device[0]})", *cells)
                    )
    if not rows:
        return None
    headers = (
        "setting",
        "method",
        "device",
        "time per meta-iteration (ms)",
        "adaptation per test episode (ms)",
        "peak memory (MB)",
    )
    return table(headers, rows)
