"""What training learned, per dataset setting: validation curves of every method, and the ablations'
test accuracy against the regularizer terms and the meta-batch size (report/figures.py: how every
figure is drawn)."""

from __future__ import annotations

import math
import statistics

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmarks.report.accuracy_claims import meta_batch_pairs
from benchmarks.report.compare import SCALE, paired_difference, summarize
from benchmarks.report.figures import (
    DIFF_AXIS,
    MAX_MARKERS,
    METRIC_AXIS,
    RenderedFigure,
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
    REGULARIZER_VARIANTS,
    cell_label,
    method_name,
    method_order,
    slug,
)
from benchmarks.report.runs import Run, RunSet


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
                    markerfacecolor=face(method, reduced),
                    markevery=max(1, math.ceil(len(it) / MAX_MARKERS)),
                    zorder=3,
                )
            seeds = len(method_runs)
            ax.set_title(f"{method_name(method)} ({seeds} seed{'s' if seeds > 1 else ''}){dagger(reduced)}")
            ax.set_xlabel("meta-iteration")
        axes[0].set_ylabel(f"validation {METRIC_AXIS[metric]}")
        handles = [method_handle(m, line=True, reduced=all(r.reduced for r in rs)) for m, rs in series]
        handles.append(Line2D([], [], color="0.75", label="the other methods"))
        if reduced_any:
            handles.append(reduced_handle())
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
        several = any(len(rs) > 1 for _, rs in series)
        how = "line: mean over seeds; band: min–max over seeds" if several else "one seed per method"
        fig.suptitle(
            f"Validation {METRIC_AXIS[metric]} during meta-training, {cell_label(dataset, setting)}, default "
            f"variants{dagger(reduced_any)}\n({how})"
        )

    name = f"validation-{slug(dataset)}-{slug(setting)}.png"
    caption = (
        f"Validation {METRIC_AXIS[metric]} against meta-iteration, {cell_label(dataset, setting)}, one panel per "
        f"method (the other methods in grey){reduced_note(reduced_any)}"
    )
    width = max(7.0, 2.6 * len(series) + 0.6)
    return render(name, caption, draw, (width, 4.2))


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
                markerfacecolor=face("amfs", s.reduced),
                capsize=4,
            )
        ticks = [f"{v}{dagger(s.reduced)}" for v, s in zip(variants, summaries, strict=True)]
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
                    markerfacecolor=face("amfs", p.reduced),
                    capsize=4,
                )
            right.axhline(0.0, color="black", linewidth=0.8)
            right.set_xticks(range(len(diffs)), [f"{v}{dagger(p.reduced)}" for v, p in diffs])
            right.set_xlabel("AMFS regularizer variant")
            right.set_ylabel(DIFF_AXIS[metric].replace("the first", "the variant"))
            right.set_title("Variant − reg-none, paired (95% bootstrap CI)")
        if reduced_any:
            fig.legend(handles=[reduced_handle()], loc="outside lower center")
        fig.suptitle(f"AMFS regularizer ablation, {cell_label(dataset, setting)}{dagger(reduced_any)}")

    name = f"regularizer-{slug(dataset)}-{slug(setting)}.png"
    caption = f"AMFS regularizer variants: test {METRIC_AXIS[metric]}, and the paired difference against reg-none"
    caption += f", {cell_label(dataset, setting)}"
    if not diffs:
        caption += " (no reg-none runs to pair with)"
    caption += reduced_note(reduced_any)
    return render(name, caption, draw, (10.0 if diffs else 6.0, 4.5))


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
                    markerfacecolor=face(method, x.reduced),
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
                    markerfacecolor=face("o-amfs", p.reduced),
                )
            right.axhline(0.0, color="black", linewidth=0.8)
            right.set_xscale("log", base=2)
            right.set_xticks(sizes, [str(s) for s in sizes])
            right.set_xlabel("meta-batch size (tasks, log scale)")
            right.set_ylabel(DIFF_AXIS[metric].replace("the first", "O-AMFS"))
            right.set_title("O-AMFS − MAML, paired (95% bootstrap CI)")
        handles = [
            method_handle("maml", reduced=all(x.reduced for x in m_summaries)),
            method_handle("o-amfs", reduced=all(x.reduced for x in o_summaries)),
        ]
        if reduced_any:
            handles.append(reduced_handle())
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle(
            f"Task-gradient weighting against meta-batch size, {cell_label(dataset, setting)}{dagger(reduced_any)}"
        )

    name = f"meta-batch-{slug(dataset)}-{slug(setting)}.png"
    caption = (
        f"O-AMFS and MAML against meta-batch size: test {METRIC_AXIS[metric]}, and the paired difference, "
        f"{cell_label(dataset, setting)}{reduced_note(reduced_any)}"
    )
    return render(name, caption, draw, (10.0 if present else 6.0, 4.8))
