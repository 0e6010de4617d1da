"""The methods side by side: their cost per device type (time per meta-iteration, adaptation time,
peak memory) and their paired test difference against MAML (report/figures.py: how every figure is
drawn)."""

from __future__ import annotations

import statistics

from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks.report.compare import paired_difference
from benchmarks.report.cost_claim import COST_MEASURES
from benchmarks.report.figures import (
    COST_UNITS,
    LOG_SCALE_ABOVE,
    PLAIN,
    RenderedFigure,
    and_list,
    color,
    dagger,
    face,
    marker,
    method_handle,
    reduced_handle,
    reduced_note,
    render,
)
from benchmarks.report.labels import (
    AMFS_FAMILY,
    cell_label,
    method_name,
    method_order,
    slug,
    variant_order,
)
from benchmarks.report.runs import Run, RunSet


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
                            markerfacecolor=face(method, reduced),
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
                method_handle(m, reduced=all(r for (_, mm, _), (_, r) in table.items() if mm == m)) for m in methods
            ]
            if reduced_any:
                handles.append(reduced_handle())
            fig.legend(handles=handles, loc="outside right center", title="method")
            fig.suptitle(f"Cost per method, median over seeds ({title})")

        name = f"cost-{slug(kind)}.png"
        drawn = and_list([f"{label} ({COST_UNITS[measure]})" for measure, label in measures])
        caption = f"{drawn[:1].upper()}{drawn[1:]} per method on {kind} ({', '.join(models)}), median over seeds, "
        caption += "lower is better"
        precision = sorted({row[2] for row in rows if row[2] != "default"}, key=variant_order)
        if precision:
            caption += f"; default variants and the precision variant{'s' if len(precision) > 1 else ''} "
            caption += f"{and_list(precision)} in rows of their own"
        if absent:
            caption += f"; {and_list(absent)}: not recorded by any run on {kind}, so not drawn"
        caption += reduced_note(reduced_any)
        height = max(3.0, 1.5 + len(rows) * (0.3 + 0.13 * len(methods)))
        width = 1.2 + 3.4 * len(measures) + 1.4
        figures.append(render(name, caption, draw, (width, height)))
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
                        markerfacecolor=face(method, p.reduced),
                    )
            ax.axvline(0.0, color="black", linewidth=0.8)
            ax.set_yticks(range(len(labels)), [f"{label}{dagger(label in reduced)}" for label in labels])
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
            handles = [method_handle(m, reduced=all(p.reduced for _, mm, p in rows if mm == m)) for m in methods]
            if reduced:
                handles.append(reduced_handle())
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="method")

        name = f"paired-vs-maml-{metric}.png"
        present = and_list([method_name(m) for m in AMFS_FAMILY if any(r[1] == m for r in rows)])
        what = "Accuracy difference (pp)" if metric == "accuracy" else "MSE difference"
        better = "> 0 favours the method" if metric == "accuracy" else "< 0 favours the method"
        caption = f"{what} of {present} against MAML, paired on the same test episodes; {better}"
        caption += reduced_note(bool(reduced_labels))
        figures.append(render(name, caption, draw, (8.5, 2.0 + 0.6 * len(labels))))
    return figures
