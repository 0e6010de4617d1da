"""The report's figures, rendered with matplotlib's Agg backend to PNG bytes.

Deterministic: matplotlib's default style (not the user's matplotlibrc), fixed sizes and dpi, and no
'Software' metadata in the PNG, so the same store gives the same bytes on one installation. A figure
whose data is absent is not drawn, nor is a panel whose measure no run recorded; the README says
which ones and why.

Every figure says what it shows, its units and which direction is better; each method has its own
colour and marker; hollow markers and † mark reduced-iteration runs. File names depend only on what
a figure shows (dataset, setting, metric, device type), never on the machine that made the runs.
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
from matplotlib.lines import Line2D

from benchmarks.report.accuracy_claims import meta_batch_pairs
from benchmarks.report.compare import SCALE, paired_difference, summarize
from benchmarks.report.cost_claim import COST_MEASURES
from benchmarks.report.labels import (
    AMFS_FAMILY,
    REDUCED_MARK,
    REGULARIZER_VARIANTS,
    cell_label,
    method_name,
    method_order,
    slug,
    variant_order,
)
from benchmarks.report.runs import Run, RunSet

DPI = 100
COLORS = {"maml": "tab:blue", "fomaml": "tab:cyan", "i-amfs": "tab:green", "o-amfs": "tab:orange", "amfs": "tab:red"}
MARKERS = {"maml": "o", "fomaml": "v", "i-amfs": "s", "o-amfs": "^", "amfs": "D"}
_OTHER_COLORS = ("tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive")
_OTHER_MARKERS = ("P", "X", "*", "h", "<")
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 9}
METRIC_AXIS = {"accuracy": "accuracy (%, higher is better)", "mse": "MSE (lower is better)"}
DIFF_AXIS = {
    "accuracy": "accuracy difference (pp; > 0 favours the first)",
    "mse": "MSE difference (< 0 favours the first)",
}
COST_UNITS = {
    "meta_iteration_ms_median": "ms",
    "adaptation_ms_per_episode": "ms",
    "peak_memory_mb": "MB",
}
REDUCED_LABEL = f"reduced iterations ({REDUCED_MARK}, hollow)"


# cost axes go logarithmic only when values span more than this factor (e.g. sinusoid vs mini-ImageNet);
# the cost figure plots points, whose position (not length) carries the value, so a log axis is sound
LOG_SCALE_ABOVE = 20.0
# the file names of every figure the report draws: `report` deletes a PNG only when it matches one of them
FIGURE_NAME = re.compile(r"(validation|regularizer|meta-batch|cost|paired-vs-maml)-[a-z0-9-]+\.png")


# plain numbers on log axes ('40', '100' rather than '4 x 10^1')
PLAIN = ticker.FuncFormatter(lambda value, _: f"{value:g}")
# at most this many markers along one validation curve (a 60,000-iteration run has 120 points)
MAX_MARKERS = 12


@dataclass(frozen=True)
class RenderedFigure:
    name: str  # file name
    caption: str
    png: bytes
    panels: tuple[str, ...] = ()  # the title of each drawn panel
    legend: tuple[str, ...] = ()  # every legend entry, in order


def is_figure_name(name: str) -> bool:
    """Whether a file name is of a form this module writes (so a stale one may be removed)."""
    return bool(FIGURE_NAME.fullmatch(name))


def color(method: str) -> str:
    if method in COLORS:
        return COLORS[method]
    return _OTHER_COLORS[sum(map(ord, method)) % len(_OTHER_COLORS)]


def marker(method: str) -> str:
    if method in MARKERS:
        return MARKERS[method]
    return _OTHER_MARKERS[sum(map(ord, method)) % len(_OTHER_MARKERS)]


def _face(method: str, reduced: bool) -> str:
    """Marker face colour: hollow for reduced-iteration runs."""
    return "white" if reduced else color(method)


def _dagger(reduced: bool) -> str:
    return f" {REDUCED_MARK}" if reduced else ""


def _reduced_note(reduced: bool) -> str:
    return f"; hollow markers and {REDUCED_MARK} mark reduced-iteration runs" if reduced else ""


def _and(items: list[str]) -> str:
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]


def _reduced_handle() -> Line2D:
    return Line2D([], [], linestyle="none", marker="o", color="black", markerfacecolor="white", label=REDUCED_LABEL)


def _method_handle(method: str, line: bool = False, reduced: bool = False) -> Line2D:
    """A method's legend entry; hollow when every mark of the method in the figure is a reduced run."""
    return Line2D(
        [],
        [],
        linestyle="-" if line else "none",
        marker=marker(method),
        color=color(method),
        markerfacecolor=_face(method, reduced),
        label=method_name(method),
    )


def _render(name: str, caption: str, draw: Callable[[Figure], None], size: tuple[float, float]) -> RenderedFigure:
    """The figure drawn by `draw` as PNG bytes, in a fixed style, without version metadata."""
    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    panels = tuple(ax.get_title() for ax in fig.axes if ax.axison)
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    legend = tuple(t.get_text() for lg in legends if lg is not None for t in lg.get_texts())
    return RenderedFigure(name, caption, buffer.getvalue(), panels, legend)


# --- validation curves --------------------------------------------------------------------------
def _validation_series(runs: RunSet, dataset: str, setting: str) -> tuple[str | None, list[tuple[str, list[Run]]]]:
    methods = sorted({m for m, v in runs.rows(dataset, setting) if v == "default"}, key=method_order)
    series = []
    metric = None
    for method in methods:
        cell = runs.cell(dataset, setting, method)
        with_curves = [cell[s] for s in sorted(cell) if cell[s].validation_curve]
        if with_curves:
            metric = with_curves[0].metric
            series.append((method, with_curves))
    return metric, series


def validation_figure(runs: RunSet, dataset: str, setting: str) -> RenderedFigure | None:
    """Validation metric against meta-iteration, one panel per method (default variants) on a shared
    axis, the other methods in grey behind it: methods whose curves coincide stay visible. Mean over
    seeds where they share iterations (band: min-max over seeds), else one line per seed."""
    metric, series = _validation_series(runs, dataset, setting)
    if not series or metric is None:
        return None
    scale = SCALE[metric]
    reduced_any = any(r.reduced for _, rs in series for r in rs)

    def curves(method_runs: list[Run]) -> list[tuple[list[int], list[float], list[float], list[float]]]:
        """(iterations, centre, low, high) per line: the seed mean when seeds share iterations."""
        its = [[p["iteration"] for p in r.validation_curve] for r in method_runs]
        vals = [[p["metric"] * scale for p in r.validation_curve] for r in method_runs]
        if all(it == its[0] for it in its):
            cols = list(zip(*vals, strict=True))
            return [(its[0], [statistics.fmean(c) for c in cols], [min(c) for c in cols], [max(c) for c in cols])]
        return [(it, v, v, v) for it, v in zip(its, vals, strict=True)]

    lines = {method: curves(rs) for method, rs in series}

    def draw(fig: Figure) -> None:
        axes: list[Axes] = list(fig.subplots(1, len(series), sharex=True, sharey=True, squeeze=False)[0])
        for ax, (method, method_runs) in zip(axes, series, strict=True):
            for other, _ in series:
                if other != method:
                    for it, centre, _, _ in lines[other]:
                        ax.plot(it, centre, color="0.75", linewidth=1.0, zorder=1)
            reduced = any(r.reduced for r in method_runs)
            for it, centre, low, high in lines[method]:
                if low != high:
                    ax.fill_between(it, low, high, color=color(method), alpha=0.2, linewidth=0, zorder=2)
                ax.plot(
                    it,
                    centre,
                    color=color(method),
                    marker=marker(method),
                    markersize=5,
                    markerfacecolor=_face(method, reduced),
                    markevery=max(1, math.ceil(len(it) / MAX_MARKERS)),
                    zorder=3,
                )
            seeds = len(method_runs)
            ax.set_title(f"{method_name(method)} ({seeds} seed{'s' if seeds > 1 else ''}){_dagger(reduced)}")
            ax.set_xlabel("meta-iteration")
        axes[0].set_ylabel(f"validation {METRIC_AXIS[metric]}")
        handles = [_method_handle(m, line=True, reduced=all(r.reduced for r in rs)) for m, rs in series]
        handles.append(Line2D([], [], color="0.75", label="the other methods"))
        if reduced_any:
            handles.append(_reduced_handle())
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
        several = any(len(rs) > 1 for _, rs in series)
        how = "line: mean over seeds; band: min–max over seeds" if several else "one seed per method"
        fig.suptitle(
            f"Validation {METRIC_AXIS[metric]} during meta-training, {cell_label(dataset, setting)}, default "
            f"variants{_dagger(reduced_any)}\n({how})"
        )

    name = f"validation-{slug(dataset)}-{slug(setting)}.png"
    caption = (
        f"Validation {METRIC_AXIS[metric]} against meta-iteration, {cell_label(dataset, setting)}, one panel per "
        f"method (the other methods in grey){_reduced_note(reduced_any)}"
    )
    width = max(7.0, 2.6 * len(series) + 0.6)
    return _render(name, caption, draw, (width, 4.2))


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
    reduced_any = any(s.reduced for s in summaries)

    def draw(fig: Figure) -> None:
        axes: list[Axes] = list(fig.subplots(1, 2 if diffs else 1, squeeze=False)[0])
        left = axes[0]
        for x, s in enumerate(summaries):
            left.errorbar(
                [x],
                [s.pooled.mean],
                yerr=[0.0 if math.isnan(s.pooled.ci95) else s.pooled.ci95],
                fmt=marker("amfs"),
                color=color("amfs"),
                markerfacecolor=_face("amfs", s.reduced),
                capsize=4,
            )
        ticks = [f"{v}{_dagger(s.reduced)}" for v, s in zip(variants, summaries, strict=True)]
        left.set_xticks(range(len(variants)), ticks)
        left.set_xlabel("AMFS regularizer variant")
        left.set_ylabel(f"test {METRIC_AXIS[metric]}")
        left.set_title("Test metric, mean ± 95% CI over episodes")
        if diffs:
            right = axes[1]
            for x, (_, p) in enumerate(diffs):
                right.errorbar(
                    [x],
                    [p.ci.mean],
                    yerr=[[p.ci.mean - p.ci.low], [p.ci.high - p.ci.mean]],
                    fmt=marker("amfs"),
                    color=color("amfs"),
                    markerfacecolor=_face("amfs", p.reduced),
                    capsize=4,
                )
            right.axhline(0.0, color="black", linewidth=0.8)
            right.set_xticks(range(len(diffs)), [f"{v}{_dagger(p.reduced)}" for v, p in diffs])
            right.set_xlabel("AMFS regularizer variant")
            right.set_ylabel(DIFF_AXIS[metric].replace("the first", "the variant"))
            right.set_title("Variant − reg-none, paired (95% bootstrap CI)")
        if reduced_any:
            fig.legend(handles=[_reduced_handle()], loc="outside lower center")
        fig.suptitle(f"AMFS regularizer ablation, {cell_label(dataset, setting)}{_dagger(reduced_any)}")

    name = f"regularizer-{slug(dataset)}-{slug(setting)}.png"
    caption = f"AMFS regularizer variants: test {METRIC_AXIS[metric]}, and the paired difference against reg-none"
    caption += f", {cell_label(dataset, setting)}"
    if not diffs:
        caption += " (no reg-none runs to pair with)"
    caption += _reduced_note(reduced_any)
    return _render(name, caption, draw, (10.0 if diffs else 6.0, 4.5))


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
    present = [(s, p) for s, p in zip(sizes, diffs, strict=True) if p is not None]
    reduced_any = any(s.reduced for s in o_summaries + m_summaries)

    def draw(fig: Figure) -> None:
        axes: list[Axes] = list(fig.subplots(1, 2 if present else 1, squeeze=False)[0])
        left = axes[0]
        # the two methods sit slightly apart along the (log) size axis so their CIs do not overlap
        for method, summaries, shift in (("maml", m_summaries, 0.97), ("o-amfs", o_summaries, 1.03)):
            left.plot(
                [s * shift for s in sizes], [x.pooled.mean for x in summaries], color=color(method), linewidth=1.0
            )
            for size, x in zip(sizes, summaries, strict=True):
                left.errorbar(
                    [size * shift],
                    [x.pooled.mean],
                    yerr=[0.0 if math.isnan(x.pooled.ci95) else x.pooled.ci95],
                    fmt=marker(method),
                    capsize=3,
                    color=color(method),
                    markerfacecolor=_face(method, x.reduced),
                )
        left.set_xscale("log", base=2)
        left.set_xticks(sizes, [str(s) for s in sizes])
        left.set_xlabel("meta-batch size (tasks, log scale)")
        left.set_ylabel(f"test {METRIC_AXIS[metric]}")
        left.set_title("Test metric, mean ± 95% CI over episodes")
        if present:
            right = axes[1]
            right.plot([s for s, _ in present], [p.ci.mean for _, p in present], color=color("o-amfs"), linewidth=1)
            for size, p in present:
                right.errorbar(
                    [size],
                    [p.ci.mean],
                    yerr=[[p.ci.mean - p.ci.low], [p.ci.high - p.ci.mean]],
                    fmt=marker("o-amfs"),
                    capsize=3,
                    color=color("o-amfs"),
                    markerfacecolor=_face("o-amfs", p.reduced),
                )
            right.axhline(0.0, color="black", linewidth=0.8)
            right.set_xscale("log", base=2)
            right.set_xticks(sizes, [str(s) for s in sizes])
            right.set_xlabel("meta-batch size (tasks, log scale)")
            right.set_ylabel(DIFF_AXIS[metric].replace("the first", "O-AMFS"))
            right.set_title("O-AMFS − MAML, paired (95% bootstrap CI)")
        handles = [
            _method_handle("maml", reduced=all(x.reduced for x in m_summaries)),
            _method_handle("o-amfs", reduced=all(x.reduced for x in o_summaries)),
        ]
        if reduced_any:
            handles.append(_reduced_handle())
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle(
            f"Task-gradient weighting against meta-batch size, {cell_label(dataset, setting)}{_dagger(reduced_any)}"
        )

    name = f"meta-batch-{slug(dataset)}-{slug(setting)}.png"
    caption = (
        f"O-AMFS and MAML against meta-batch size: test {METRIC_AXIS[metric]}, and the paired difference, "
        f"{cell_label(dataset, setting)}{_reduced_note(reduced_any)}"
    )
    return _render(name, caption, draw, (10.0 if present else 6.0, 4.8))


# --- cost -----------------------------------------------------------------------------------------
def _precisions(runs: list[Run]) -> set[str]:
    return {str(r.config.get("precision", "fp32")) for r in runs}


def cost_figures(runs: RunSet) -> list[RenderedFigure]:
    """Per device type (cpu, cuda): the median over seeds of each cost measure some run recorded, one
    panel per measure, one row per dataset setting (and per precision variant, whose cost is what it
    changes; and per device model when there are several), the methods as distinct points in a row."""
    timed = [r for r in runs.done if r.timing]
    figures = []
    for kind in sorted({r.device[0] for r in timed}):
        models = sorted({r.device[1] for r in timed if r.device[0] == kind})
        rows: list[tuple[str, str, str, str]] = []  # dataset, setting, variant, device model
        for dataset in runs.datasets():
            for setting in runs.settings(dataset):
                variants = sorted({v for _, v in runs.rows(dataset, setting)}, key=variant_order)
                key = (dataset, setting, "default")
                base = _precisions([r for r in timed if (r.dataset, r.setting, r.variant) == key])
                for variant in variants:
                    here = [r for r in timed if (r.dataset, r.setting, r.variant) == (dataset, setting, variant)]
                    if variant != "default" and (not here or _precisions(here) == base or not base):
                        continue
                    rows += [(dataset, setting, variant, model) for model in models]
        methods = sorted({r.method for r in timed if r.device[0] == kind}, key=method_order)
        # (row, method, measure) -> (median over seeds, any reduced run)
        table: dict[tuple[int, str, str], tuple[float, bool]] = {}
        for i, (dataset, setting, variant, model) in enumerate(rows):
            for method in methods:
                cell = [r for r in runs.cell(dataset, setting, method, variant).values() if r.device == (kind, model)]
                for measure, _ in COST_MEASURES:
                    values = [float(r.timing[measure]) for r in cell if isinstance(r.timing.get(measure), int | float)]
                    if values:
                        table[(i, method, measure)] = (statistics.median(values), any(r.reduced for r in cell))
        used = sorted({k[0] for k in table})
        if not used:
            continue
        rows = [rows[i] for i in used]
        table = {(used.index(i), m, measure): v for (i, m, measure), v in table.items()}
        methods = [m for m in methods if any(k[1] == m for k in table)]
        measures = [(measure, label) for measure, label in COST_MEASURES if any(k[2] == measure for k in table)]
        absent = [label for measure, label in COST_MEASURES if (measure, label) not in measures]
        reduced_any = any(reduced for _, reduced in table.values())

        def row_label(row: tuple[str, str, str, str], several_models: bool = len(models) > 1) -> str:
            dataset, setting, variant, model = row
            text = cell_label(dataset, setting) + (f", {variant}" if variant != "default" else "")
            return text + (f"\n{model}" if several_models else "")

        def draw(
            fig: Figure,
            rows: list = rows,
            methods: list = methods,
            measures: list = measures,
            table: dict = table,
            reduced_any: bool = reduced_any,
            title: str = f"{kind}: {', '.join(models)}",
        ) -> None:
            axes: list[Axes] = list(fig.subplots(1, len(measures), sharey=True, squeeze=False)[0])
            step = 0.7 / max(1, len(methods))
            for ax, (measure, label) in zip(axes, measures, strict=True):
                for j, method in enumerate(methods):
                    offset = (j - (len(methods) - 1) / 2) * step
                    for i in range(len(rows)):
                        entry = table.get((i, method, measure))
                        if entry is None:
                            continue
                        value, reduced = entry
                        ax.plot(
                            [value],
                            [i + offset],
                            linestyle="none",
                            marker=marker(method),
                            markersize=7,
                            color=color(method),
                            markerfacecolor=_face(method, reduced),
                        )
                values = [v for (_, _, m), (v, _) in table.items() if m == measure]
                log = min(values) > 0 and max(values) / min(values) > LOG_SCALE_ABOVE
                if log:
                    ax.set_xscale("log")
                    # 1-2-5 ticks over up to two decades, 1-3 beyond (labels would collide)
                    subs = (1.0, 2.0, 5.0) if max(values) / min(values) <= 100 else (1.0, 3.0)
                    ax.xaxis.set_major_locator(ticker.LogLocator(subs=subs))
                    ax.xaxis.set_major_formatter(PLAIN)
                    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
                else:
                    ax.set_xlim(left=min(0.0, min(values) * 1.1), right=max(max(values), 0.0) * 1.1 or 1.0)
                ax.set_title(label)
                ax.set_xlabel(f"{COST_UNITS[measure]}, lower is better{', log scale' if log else ''}")
                for i in range(len(rows) - 1):
                    ax.axhline(i + 0.5, color="0.85", linewidth=0.8)
                ax.grid(axis="y", visible=False)
            axes[0].set_yticks(range(len(rows)), [row_label(r) for r in rows])
            axes[0].set_ylim(len(rows) - 0.5, -0.5)
            handles = [
                _method_handle(m, reduced=all(r for (_, mm, _), (_, r) in table.items() if mm == m)) for m in methods
            ]
            if reduced_any:
                handles.append(_reduced_handle())
            fig.legend(handles=handles, loc="outside right center", title="method")
            fig.suptitle(f"Cost per method, median over seeds ({title})")

        name = f"cost-{slug(kind)}.png"
        drawn = _and([f"{label} ({COST_UNITS[measure]})" for measure, label in measures])
        caption = f"{drawn[:1].upper()}{drawn[1:]} per method on {kind} ({', '.join(models)}), median over seeds, "
        caption += "lower is better"
        precision = sorted({row[2] for row in rows if row[2] != "default"}, key=variant_order)
        if precision:
            caption += f"; default variants and the precision variant{'s' if len(precision) > 1 else ''} "
            caption += f"{_and(precision)} in rows of their own"
        if absent:
            caption += f"; {_and(absent)}: not recorded by any run on {kind}, so not drawn"
        caption += _reduced_note(reduced_any)
        height = max(3.0, 1.5 + len(rows) * (0.3 + 0.13 * len(methods)))
        width = 1.2 + 3.4 * len(measures) + 1.4
        figures.append(_render(name, caption, draw, (width, height)))
    return figures


# --- paired differences against MAML -------------------------------------------------------------
PAIRED_AXIS = {
    "accuracy": "accuracy difference, method − MAML (pp); > 0 favours the method",
    "mse": "MSE difference, method − MAML; < 0 favours the method",
}


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
        reduced_labels = {label for label, _, p in rows if p.reduced}

        def draw(
            fig: Figure, rows: list = rows, labels: list = labels, metric: str = metric, reduced: set = reduced_labels
        ) -> None:
            ax = fig.add_subplot()
            methods = [m for m in AMFS_FAMILY if any(r[1] == m for r in rows)]
            step = 0.7 / max(1, len(methods))
            for j, method in enumerate(methods):
                for label, m, p in rows:
                    if m != method:
                        continue
                    ax.errorbar(
                        [p.ci.mean],
                        [labels.index(label) + (j - (len(methods) - 1) / 2) * step],
                        xerr=[[p.ci.mean - p.ci.low], [p.ci.high - p.ci.mean]],
                        fmt=marker(method),
                        capsize=3,
                        color=color(method),
                        markerfacecolor=_face(method, p.reduced),
                    )
            ax.axvline(0.0, color="black", linewidth=0.8)
            ax.set_yticks(range(len(labels)), [f"{label}{_dagger(label in reduced)}" for label in labels])
            ax.set_ylim(len(labels) - 0.5, -0.5)
            for i in range(len(labels) - 1):
                ax.axhline(i + 0.5, color="0.85", linewidth=0.8)
            ax.grid(axis="y", visible=False)
            ax.set_xlabel(PAIRED_AXIS[metric])
            what = "Accuracy" if metric == "accuracy" else "MSE"
            ax.set_title(
                f"{what} difference against MAML on the same test episodes, default variants\n"
                "(mean and 95% bootstrap CI over seeds and episodes)"
            )
            handles = [_method_handle(m, reduced=all(p.reduced for _, mm, p in rows if mm == m)) for m in methods]
            if reduced:
                handles.append(_reduced_handle())
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="method")

        name = f"paired-vs-maml-{metric}.png"
        present = _and([method_name(m) for m in AMFS_FAMILY if any(r[1] == m for r in rows)])
        what = "Accuracy difference (pp)" if metric == "accuracy" else "MSE difference"
        better = "> 0 favours the method" if metric == "accuracy" else "< 0 favours the method"
        caption = f"{what} of {present} against MAML, paired on the same test episodes; {better}"
        caption += _reduced_note(bool(reduced_labels))
        figures.append(_render(name, caption, draw, (8.5, 2.0 + 0.6 * len(labels))))
    return figures
