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
import re
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib
import matplotlib.style
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmarks.report.labels import (
    REDUCED_MARK,
    method_name,
)

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


def face(method: str, reduced: bool) -> str:
    """Marker face colour: hollow for reduced-iteration runs."""
    return "white" if reduced else color(method)


def dagger(reduced: bool) -> str:
    return f" {REDUCED_MARK}" if reduced else ""


def reduced_note(reduced: bool) -> str:
    return f"; hollow markers and {REDUCED_MARK} mark reduced-iteration runs" if reduced else ""


def and_list(items: list[str]) -> str:
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]


def reduced_handle() -> Line2D:
    return Line2D([], [], linestyle="none", marker="o", color="black", markerfacecolor="white", label=REDUCED_LABEL)


def method_handle(method: str, line: bool = False, reduced: bool = False) -> Line2D:
    """A method's legend entry; hollow when every mark of the method in the figure is a reduced run."""
    return Line2D(
        [],
        [],
        linestyle="-" if line else "none",
        marker=marker(method),
        color=color(method),
        markerfacecolor=face(method, reduced),
        label=method_name(method),
    )


def render(name: str, caption: str, draw: Callable[[Figure], None], size: tuple[float, float]) -> RenderedFigure:
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
