"""Result tables of a grid: one per dataset and setting (accuracy in %, or MSE for the sinusoid), with
the published numbers beside ours, and one of timings and memory."""

from __future__ import annotations

import statistics

from benchmarks.common.tables import markdown as table
from benchmarks.report import published
from benchmarks.report.compare import paired_difference, summarize
from benchmarks.report.formatting import DASH, interval, mean_pm, number
from benchmarks.report.labels import cell_label, marks, method_name, setting_order
from benchmarks.report.runs import RunSet

DIGITS = {"accuracy": 2, "mse": 3}
# TF32 is admissible for a method and setting when the paired 95% CI of its accuracy change against
# full float32 (same seeds, same test episodes) lies within +-TF32_TOLERANCE_PP percentage points.
TF32_TOLERANCE_PP = 0.5


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
        delta = _paired_interval(cell, maml, digits) if not (method == "maml" and variant == "default") else DASH
        # a variant against its own method's default variant: what the variant itself changes
        own_default = runs.cell(dataset, setting, method) if variant != "default" else None
        own_delta = _paired_interval(cell, own_default, digits)
        refs = published.published_for(method, dataset, setting) if variant == "default" else []
        flags = marks(summary)
        rows.append(
            (
                method_name(method),
                variant,
                mean_pm(summary.pooled.mean, summary.pooled.ci95, digits),
                number(summary.spread, digits),
                delta,
                own_delta,
                str(len(summary.seeds)),
                _compact(summary.episodes_per_seed),
                _compact(summary.iterations),
                _compact(summary.best_iterations),
                "; ".join(p.display() for p in refs) or DASH,
                flags or DASH,
            )
        )
    unit = "MSE" if metric == "mse" else "pp"
    value = "test MSE ± 95% CI" if metric == "mse" else "accuracy % ± 95% CI"
    headers = (
        "method",
        "variant",
        value,
        f"seed spread ({unit})",
        f"Δ vs MAML ({unit}, paired 95% CI)",
        f"Δ vs its default variant ({unit}, paired 95% CI)",
        "seeds",
        "episodes/seed",
        "iterations",
        "selected iteration",
        "published %",
        "flags",
    )
    return table(headers, rows)


def _precisions(cell) -> set[str]:
    return {str(run.config.get("precision", "fp32")) for run in cell.values()}


def _tolerance_verdict(low: float, high: float, tolerance: float) -> str:
    if -tolerance <= low and high <= tolerance:
        return "within"
    if high < -tolerance or low > tolerance:
        return "outside"
    return "undecided (CI straddles the bound)"


def precision_table(runs: RunSet) -> str | None:
    """The TF32 accuracy check: every method variant run in TF32 against the same method's default
    variant in full float32, as a paired difference with its verdict against TF32_TOLERANCE_PP.
    None when the grid has no such pair."""
    rows = []
    for dataset, setting, method, variant in _variant_rows(runs):
        cell, default = runs.cell(dataset, setting, method, variant), runs.cell(dataset, setting, method)
        if variant == "default" or _precisions(cell) != {"tf32"} or _precisions(default) != {"fp32"}:
            continue
        paired = paired_difference(cell, default)
        if paired is None or paired.metric != "accuracy":
            continue
        verdict = _tolerance_verdict(paired.ci.low, paired.ci.high, TF32_TOLERANCE_PP)
        difference, seeds = interval(paired.ci, 2), str(len(paired.seeds))
        rows.append((cell_label(dataset, setting), method_name(method), variant, difference, seeds, verdict))
    headers = ("Δ accuracy vs full float32 (pp, paired 95% CI)", "seeds", f"within ±{TF32_TOLERANCE_PP} pp")
    return _variant_table(headers, rows)


def _variant_rows(runs: RunSet):
    """(dataset, setting, method, variant) of every finished cell, in display order."""
    for dataset in runs.datasets():
        for setting in sorted(runs.settings(dataset), key=setting_order):
            for method, variant in runs.rows(dataset, setting):
                yield dataset, setting, method, variant


def _variant_table(headers: tuple[str, ...], rows: list) -> str | None:
    """A table whose rows start with setting, method and variant; None without rows."""
    return table(("setting", "method", "variant", *headers), rows) if rows else None


def _paired_interval(cell, baseline, digits: int) -> str:
    paired = paired_difference(cell, baseline) if baseline else None
    return interval(paired.ci, digits) if paired is not None else DASH


def other_references(runs: RunSet, dataset: str, setting: str) -> list[str]:
    """Published results of methods this grid did not run in a setting, one line each."""
    ran = {m for m, _ in runs.rows(dataset, setting)}
    return [
        f"{method_name(p.method)}: {p.display()}"
        for p in published.references_in(dataset, setting)
        if p.method not in ran
    ]


def timing_table(runs: RunSet) -> str | None:
    """Median over seeds of each timing measure, per method variant, dataset setting and device."""
    rows = []
    for dataset, setting, method, variant in _variant_rows(runs):
        by_device: dict[tuple[str, str], list] = {}
        for run in runs.cell(dataset, setting, method, variant).values():
            by_device.setdefault(run.device, []).append(run)
        for device in sorted(by_device):
            cells = []
            for measure in ("meta_iteration_ms_median", "adaptation_ms_per_episode", "peak_memory_mb"):
                values = [r.timing.get(measure) for r in by_device[device]]
                values = [float(v) for v in values if isinstance(v, int | float)]
                digits = 0 if measure == "peak_memory_mb" else 2
                cells.append(number(statistics.median(values), digits) if values else DASH)
            label = cell_label(dataset, setting)
            rows.append((label, method_name(method), variant, f"{device[1]} ({device[0]})", *cells))
    headers = ("device", "time per meta-iteration (ms)", "adaptation per test episode (ms)", "peak memory (MB)")
    return _variant_table(headers, rows)
