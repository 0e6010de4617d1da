"""The report's figures, rendered with matplotlib's Agg backend to PNG bytes.

Deterministic: matplotlib's default style (not the user's matplotlibrc), fixed sizes and dpi, and no
'Software' metadata in the PNG, so the same store gives the same bytes on one installation. A figure
whose data is absent is not drawn; the README says which ones and why.
"""

from __future__ import annotations

import io
import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib
import matplotlib.style
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks.report.claims import COST_MEASURES, meta_batch_pairs
from benchmarks.report.compare import SCALE, paired_difference, summarize
from benchmarks.report.labels import (
    AMFS_FAMILY,
    REGULARIZER_VARIANTS,
    cell_label,
    method_name,
    method_order,
    slug,
)
from benchmarks.report.runs import RunSet

DPI = 100
COLORS = {"maml": "tab:blue", "fomaml": "tab:cyan", "i-amfs": "tab:green", "o-amfs": "tab:orange", "amfs": "tab:red"}
_OTHER_COLORS = ("tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive")
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 9}
METRIC_AXIS = {"accuracy": "accuracy (%)", "mse": "MSE (lower is better)"}
DIFF_AXIS = {"accuracy": "difference (percentage points)", "mse": "MSE difference (negative is better)"}
COST_UNITS = {
    "meta_iteration_ms_median": "ms",
    "adaptation_ms_per_episode": "ms",
    "peak_memory_mb": "MB",
}


# cost axes go logarithmic only when values span more than this factor (e.g. sinusoid vs mini-ImageNet)
LOG_SCALE_ABOVE = 20.0
# the file names of every figure the report draws: `report` deletes a PNG only when it matches one of them
FIGURE_NAME = re.compile(r"(validation|regularizer|meta-batch|cost|paired-vs-maml)-[a-z0-9-]+\.png")


def is_report_figure(name: str) -> bool:
    """Whether a file name is one the report's figures take (so a stale one of them may be deleted)."""
    return bool(FIGURE_NAME.fullmatch(name))


# plain numbers on log axes ('40', '100' rather than '4 x 10^1')
PLAIN = ticker.FuncFormatter(lambda value, _: f"{value:g}")


@dataclass(frozen=True)
class RenderedFigure:
    name: str  # file name
    caption: str
    png: bytes


def color(method: str) -> str:
    if method in COLORS:
        return COLORS[method]
    return _OTHER_COLORS[sum(map(ord, method)) % len(_OTHER_COLORS)]


def render(draw: Callable[[Figure], None], size: tuple[float, float]) -> bytes:
    """PNG bytes of a figure drawn by `draw`, in a fixed style, without version metadata."""
    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


# --- validation curves --------------------------------------------------------------------------
def validation_figure(runs: RunSet, dataset: str, setting: str) -> RenderedFigure | None:
    """Validation metric against meta-iteration for each method's default runs; mean over seeds where
    they share iterations (band: min-max over seeds), else one line per seed."""
    methods = sorted({m for m, v in runs.rows(dataset, setting) if v == "default"}, key=method_order)
    series = []
    metric = None
    for method in methods:
        cell = runs.cell(dataset, setting, method)
        curves = [cell[s].validation_curve for s in sorted(cell) if cell[s].validation_curve]
        if curves:
            metric = next(iter(cell.values())).metric
            series.append((method, curves))
    if not series or metric is None:
        return None
    scale = SCALE[metric]

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for method, curves in series:
            iterations = [[p["iteration"] for p in c] for c in curves]
            values = [[p["metric"] * scale for p in c] for c in curves]
            label = f"{method_name(method)} ({len(curves)} seed{'s' if len(curves) > 1 else ''})"
            if all(it == iterations[0] for it in iterations):
                mean = [statistics.fmean(col) for col in zip(*values, strict=True)]
                ax.plot(iterations[0], mean, color=color(method), label=label, marker="o", markersize=3)
                if len(values) > 1:
                    low = [min(col) for col in zip(*values, strict=True)]
                    high = [max(col) for col in zip(*values, strict=True)]
                    ax.fill_between(iterations[0], low, high, color=color(method), alpha=0.15, linewidth=0)
            else:
                for i, (it, val) in enumerate(zip(iterations, values, strict=True)):
                    ax.plot(it, val, color=color(method), alpha=0.7, label=label if i == 0 else None)
        ax.set_xlabel("meta-iteration")
        ax.set_ylabel(f"validation {METRIC_AXIS[metric]}")
        ax.set_title(f"Validation curves, {cell_label(dataset, setting)} (line: mean over seeds; band: min–max)")
        ax.legend(loc="best")

    name = f"validation-{slug(dataset)}-{slug(setting)}.png"
    caption = f"Validation {METRIC_AXIS[metric]} during meta-training, {cell_label(dataset, setting)}"
    return RenderedFigure(name, caption, render(draw, (8.0, 4.5)))


# --- regularizer ablation -----------------------------------------------------------------------
def regularizer_figure(runs: RunSet, dataset: str, setting: str) -> RenderedFigure | None:
    """AMFS's regularizer variants: accuracy with episode CI, and paired difference vs reg-none."""
    variants = [v for v in REGULARIZER_VARIANTS if runs.cell(dataset, setting, "amfs", v)]
    if len(variants) < 2:
        return None
    summaries = [summarize(runs.cell(dataset, setting, "amfs", v)) for v in variants]
    metric = summaries[0].metric
    baseline = runs.cell(dataset, setting, "amfs", "reg-none")
    diffs = [
        (v, paired_difference(runs.cell(dataset, setting, "amfs", v), baseline)) for v in variants if v != "reg-none"
    ]
    diffs = [(v, p) for v, p in diffs if p is not None] if baseline else []

    def draw(fig: Figure) -> None:
        left, right = fig.subplots(1, 2)
        xs = range(len(variants))
        left.errorbar(
            list(xs),
            [s.pooled.mean for s in summaries],
            yerr=[0.0 if math.isnan(s.pooled.ci95) else s.pooled.ci95 for s in summaries],
            fmt="o",
            color=color("amfs"),
            capsize=4,
        )
        left.set_xticks(list(xs), variants)
        left.set_xlabel("AMFS regularizer variant")
        left.set_ylabel(f"test {METRIC_AXIS[metric]}")
        left.set_title("Test metric, mean ± 95% CI over episodes")
        if diffs:
            pos = range(len(diffs))
            means = [p.ci.mean for _, p in diffs]
            err = [[p.ci.mean - p.ci.low for _, p in diffs], [p.ci.high - p.ci.mean for _, p in diffs]]
            right.bar(list(pos), means, yerr=err, capsize=4, color=color("amfs"), alpha=0.6)
            right.axhline(0.0, color="black", linewidth=0.8)
            right.set_xticks(list(pos), [v for v, _ in diffs])
            right.set_xlabel("AMFS regularizer variant")
            right.set_ylabel(DIFF_AXIS[metric])
            right.set_title("Paired difference vs reg-none (95% bootstrap CI)")
        else:
            right.set_axis_off()
            right.text(0.5, 0.5, "no reg-none runs to pair with", ha="center", va="center")
        fig.suptitle(f"Regularizer ablation, {cell_label(dataset, setting)}")

    name = f"regularizer-{slug(dataset)}-{slug(setting)}.png"
    caption = f"AMFS regularizer ablation, {cell_label(dataset, setting)}"
    return RenderedFigure(name, caption, render(draw, (10.0, 4.5)))


# --- meta-batch size ----------------------------------------------------------------------------
def meta_batch_figure(runs: RunSet, dataset: str, setting: str) -> RenderedFigure | None:
    """MAML and O-AMFS against meta-batch size, and their paired difference."""
    pairs = meta_batch_pairs(runs, dataset, setting)
    if len(pairs) < 2:
        return None
    sizes = [size for size, _, _ in pairs]
    o_summaries = [summarize(o) for _, o, _ in pairs]
    m_summaries = [summarize(m) for _, _, m in pairs]
    diffs = [paired_difference(o, m) for _, o, m in pairs]
    metric = o_summaries[0].metric

    def draw(fig: Figure) -> None:
        left, right = fig.subplots(1, 2)
        for method, summaries, shift in (("maml", m_summaries, 0.97), ("o-amfs", o_summaries, 1.03)):
            left.errorbar(
                [s * shift for s in sizes],
                [x.pooled.mean for x in summaries],
                yerr=[0.0 if math.isnan(x.pooled.ci95) else x.pooled.ci95 for x in summaries],
                fmt="o-",
                capsize=3,
                color=color(method),
                label=method_name(method),
            )
        left.set_xscale("log", base=2)
        left.set_xticks(sizes, [str(s) for s in sizes])
        left.set_xlabel("meta-batch size (tasks, log scale)")
        left.set_ylabel(f"test {METRIC_AXIS[metric]}")
        left.set_title("Test metric, mean ± 95% CI over episodes")
        left.legend(loc="best")
        present = [(s, p) for s, p in zip(sizes, diffs, strict=True) if p is not None]
        right.errorbar(
            [s for s, _ in present],
            [p.ci.mean for _, p in present],
            yerr=[[p.ci.mean - p.ci.low for _, p in present], [p.ci.high - p.ci.mean for _, p in present]],
            fmt="o-",
            capsize=3,
            color=color("o-amfs"),
        )
        right.axhline(0.0, color="black", linewidth=0.8)
        right.set_xscale("log", base=2)
        right.set_xticks(sizes, [str(s) for s in sizes])
        right.set_xlabel("meta-batch size (tasks, log scale)")
        right.set_ylabel(DIFF_AXIS[metric])
        right.set_title("O-AMFS − MAML, paired (95% bootstrap CI)")
        fig.suptitle(f"Task-gradient weighting against meta-batch size, {cell_label(dataset, setting)}")

    name = f"meta-batch-{slug(dataset)}-{slug(setting)}.png"
    caption = f"O-AMFS and MAML against meta-batch size, {cell_label(dataset, setting)}"
    return RenderedFigure(name, caption, render(draw, (10.0, 4.5)))


# --- cost -----------------------------------------------------------------------------------------
def cost_figures(runs: RunSet) -> list[RenderedFigure]:
    """Per device: median over seeds of time per meta-iteration, adaptation time and peak memory,
    for each method's default runs in each dataset setting."""
    devices = sorted({r.device for r in runs.done if r.variant == "default" and r.timing})
    figures = []
    for device in devices:
        groups = [(d, s) for d in runs.datasets() for s in runs.settings(d)]
        methods = sorted(
            {r.method for r in runs.done if r.variant == "default" and r.device == device}, key=method_order
        )
        table: dict[tuple[str, str, str, str], float] = {}
        for dataset, setting in groups:
            for method in methods:
                cell = [r for r in runs.cell(dataset, setting, method).values() if r.device == device]
                for measure, _ in COST_MEASURES:
                    values = [float(r.timing[measure]) for r in cell if isinstance(r.timing.get(measure), int | float)]
                    if values:
                        table[(dataset, setting, method, measure)] = statistics.median(values)
        groups = [g for g in groups if any(k[:2] == g for k in table)]
        if not groups:
            continue

        def draw(
            fig: Figure, groups: list = groups, methods: list = methods, table: dict = table, device: tuple = device
        ) -> None:
            axes: list[Axes] = list(fig.subplots(1, len(COST_MEASURES)))
            width = 0.8 / max(1, len(methods))
            for ax, (measure, name) in zip(axes, COST_MEASURES, strict=True):
                ax.set_title(name)
                if not any(k[3] == measure for k in table):
                    ax.set_axis_off()
                    ax.text(0.5, 0.5, f"{name}:\nnot recorded by these runs", ha="center", va="center")
                    continue
                for j, method in enumerate(methods):
                    xs, ys = [], []
                    for i, (dataset, setting) in enumerate(groups):
                        value = table.get((dataset, setting, method, measure))
                        if value is not None and value > 0:
                            xs.append(i + (j - (len(methods) - 1) / 2) * width)
                            ys.append(value)
                    ax.bar(xs, ys, width=width, color=color(method), label=method_name(method))
                values = [v for k, v in table.items() if k[3] == measure and v > 0]
                log = bool(values) and max(values) / min(values) > LOG_SCALE_ABOVE
                if log:
                    ax.set_yscale("log")
                    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                    ax.yaxis.set_major_formatter(PLAIN)
                    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
                ax.set_xticks(range(len(groups)), [cell_label(d, s) for d, s in groups], rotation=30, ha="right")
                ax.set_ylabel(f"{name} ({COST_UNITS[measure]}{', log scale' if log else ''})")
            handles, labels = axes[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside right center", title="method")
            fig.suptitle(f"Cost per method (median over seeds), {device[1]} ({device[0]})")

        width_in = max(10.0, 3.0 * len(COST_MEASURES) + 0.6 * len(groups) * len(COST_MEASURES))
        name = f"cost-{slug(device[0])}-{slug(device[1])}.png"
        caption = f"Time per meta-iteration, adaptation time per test episode and peak memory on {device[1]}"
        figures.append(RenderedFigure(name, caption, render(draw, (width_in, 4.8))))
    return figures


# --- paired differences against MAML -------------------------------------------------------------
def paired_vs_maml_figures(runs: RunSet) -> list[RenderedFigure]:
    """Per metric: the paired difference of each AMFS-family method against MAML, per dataset setting."""
    figures = []
    for metric in ("accuracy", "mse"):
        rows = []
        for dataset in runs.datasets():
            for setting in runs.settings(dataset):
                maml = runs.cell(dataset, setting, "maml")
                for method in AMFS_FAMILY:
                    cell = runs.cell(dataset, setting, method)
                    if cell and maml and next(iter(cell.values())).metric == metric:
                        p = paired_difference(cell, maml)
                        if p is not None:
                            rows.append((cell_label(dataset, setting), method, p))
        if not rows:
            continue
        labels = sorted({label for label, _, _ in rows}, key=[label for label, _, _ in rows].index)

        def draw(fig: Figure, rows: list = rows, labels: list = labels, metric: str = metric) -> None:
            ax = fig.add_subplot()
            methods = [m for m in AMFS_FAMILY if any(r[1] == m for r in rows)]
            step = 0.8 / max(1, len(methods))
            for j, method in enumerate(methods):
                mine = [(labels.index(label), p) for label, m, p in rows if m == method]
                ys = [i + (j - (len(methods) - 1) / 2) * step for i, _ in mine]
                xs = [p.ci.mean for _, p in mine]
                err = [[p.ci.mean - p.ci.low for _, p in mine], [p.ci.high - p.ci.mean for _, p in mine]]
                ax.errorbar(xs, ys, xerr=err, fmt="o", capsize=3, color=color(method), label=method_name(method))
            ax.axvline(0.0, color="black", linewidth=0.8)
            ax.set_yticks(range(len(labels)), labels)
            ax.invert_yaxis()
            ax.set_xlabel(f"{DIFF_AXIS[metric]}: method − MAML, same test episodes")
            ax.set_title("Paired difference against MAML (95% bootstrap CI over seeds and episodes)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="method")

        name = f"paired-vs-maml-{metric}.png"
        caption = (
            f"Paired {'accuracy' if metric == 'accuracy' else 'MSE'} difference of I-AMFS, O-AMFS and AMFS against MAML"
        )
        figures.append(RenderedFigure(name, caption, render(draw, (8.0, 1.6 + 0.55 * len(labels)))))
    return figures
