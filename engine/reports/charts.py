"""Charts for the HTML reports, drawn by matplotlib: ROC curves, a confusion matrix, a range strip
and a scatter plot, as PNG bytes that are the same on every run.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas attached explicitly (no
pyplot: no global figure registry, no display, the process's backend left alone). Every figure is
drawn and saved inside one fixed style (matplotlib's defaults, DejaVu Sans, which ships with
matplotlib, fixed sizes and dpi), so a user's matplotlibrc cannot change it, and
:func:`png_bytes` drops the "Software" text chunk (matplotlib's version) and writes no date: the
same data gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
DPI = 100
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.color": "#eeeeee",
    "savefig.dpi": DPI,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
}
_MARKERS = {"circle": "o", "diamond": "D", "square": "s"}

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _styled(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``draw`` under matplotlib's defaults plus :data:`STYLE`, whatever the user's rc says
    (rc values are read both when artists are made and when they are drawn)."""

    @functools.wraps(draw)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with matplotlib.style.context(["default", STYLE]):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas, set explicitly
    return figure


@_styled
def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG: fixed dpi, no "Software" chunk and no date, so equal data give equal
    bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class RocSeries:
    """One curve: false-positive rate and true-positive rate, increasing."""

    label: str
    fpr: np.ndarray
    tpr: np.ndarray


@dataclasses.dataclass(frozen=True)
class RocMarker:
    """A single operating point, e.g. our arg-max decision or the paper's reported one."""

    label: str
    fpr: float
    tpr: float
    shape: str = "circle"  # circle | diamond | square


@_styled
def roc_figure(
    title: str,
    series: Sequence[RocSeries],
    markers: Sequence[RocMarker] = (),
    *,
    zoom: float | None = None,
) -> Figure:
    """An ROC chart, legend below; ``zoom`` (e.g. 0.2) shows only FPR <= zoom and
    TPR >= 1 - zoom, and names the markers that fall outside it."""
    entries = len(series) + len(markers)
    figure = _figure(5.0, 5.3 + 0.2 * entries)
    ax = figure.add_subplot()
    ax.set_box_aspect(1)
    lo_x, hi_x = 0.0, zoom if zoom else 1.0
    lo_y, hi_y = (1.0 - zoom if zoom else 0.0), 1.0
    ax.set_xlim(lo_x, hi_x)
    ax.set_ylim(lo_y, hi_y)
    ax.set_title(title, loc="left")
    ax.set_xlabel("false-positive rate (1 - specificity)")
    ax.set_ylabel("sensitivity")
    if not zoom:
        ax.plot([0, 1], [0, 1], color="#bbbbbb", linestyle=(0, (4, 3)), linewidth=1)
    for i, s in enumerate(series):
        ax.plot(
            np.asarray(s.fpr, float),
            np.asarray(s.tpr, float),
            color=PALETTE[i % len(PALETTE)],
            linewidth=2,
            clip_on=bool(zoom),  # unzoomed, a curve along the frame is drawn whole
            label=s.label,
        )
    for i, m in enumerate(markers):
        inside = lo_x <= m.fpr <= hi_x and lo_y <= m.tpr <= hi_y
        ax.plot(
            [m.fpr],
            [m.tpr],
            linestyle="none",
            marker=_MARKERS[m.shape],
            markersize=8,
            markerfacecolor=PALETTE[(i + len(series)) % len(PALETTE)],
            markeredgecolor="black",
            markeredgewidth=0.8,
            clip_on=not inside,  # one on the frame (e.g. the paper's 100%) is drawn whole
            label=m.label + ("" if inside else " (outside the zoomed area)"),
        )
    if entries:
        figure.legend(loc="outside lower left")
    return figure


@_styled
def confusion_figure(counts: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Confusion matrix (rows true, columns predicted): counts and row percentages, shaded blue
    on the diagonal and red off it by the row share."""
    counts = np.asarray(counts)
    k = len(class_names)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    shade = (255 - 200 * share) / 255.0
    diagonal = np.eye(k, dtype=bool)
    colours = np.stack(
        [np.where(diagonal, shade, 1.0), shade, np.where(diagonal, 1.0, shade)], axis=-1
    )
    side = 1.2 + 0.75 * k
    figure = _figure(side, side)
    ax = figure.add_subplot()
    ax.imshow(colours, interpolation="nearest")
    ax.grid(False)
    ax.set_xticks(range(k), [str(n) for n in class_names])
    ax.set_yticks(range(k), [str(n) for n in class_names])
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("predicted", fontweight="bold")
    ax.set_ylabel("true", fontweight="bold")
    ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(k + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#888888", linewidth=1)
    ax.tick_params(which="minor", length=0)
    for i in range(k):
        for j in range(k):
            ink = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i - 0.08, str(int(counts[i, j])), ha="center", va="center", color=ink)
            ax.text(j, i + 0.22, f"{100 * share[i, j]:.1f}%", ha="center", va="center", color=ink)
    return figure


@_styled
def range_strip_figure(
    title: str,
    value: float,
    low: float,
    high: float,
    *,
    mean: float | None = None,
    scale_max: float | None = None,
) -> Figure:
    """A horizontal strip: a reference range (e.g. the experts' weighted errors), its mean as a
    line, and our value as a red dot."""
    scale_max = scale_max or max(high, value) * 1.15 or 1.0
    figure = _figure(5.0, 1.3)
    ax = figure.add_subplot()
    ax.set_title(title, loc="left", fontsize=9)
    ax.set_xlim(0, scale_max)
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.grid(False)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.axvspan(low, high, ymin=0.3, ymax=0.7, facecolor="#cfe3f7", edgecolor="#1f77b4")
    if mean is not None:
        ax.axvline(mean, ymin=0.22, ymax=0.78, color="#1f77b4", linewidth=2)
    ax.text(low, -0.75, f"{100 * low:.1f}%", ha="left", va="center", fontsize=8)
    ax.text(high, -0.75, f"{100 * high:.1f}%", ha="right", va="center", fontsize=8)
    shown = min(max(value, 0.0), scale_max)
    ax.plot([shown], [0], marker="o", markersize=8, color="#d62728", markeredgecolor="black")
    ax.text(shown, 0.75, f"ours {100 * value:.1f}%", ha="center", va="center", color="#d62728")
    return figure


@_styled
def scatter_figure(
    title: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_label: str,
    y_label: str,
    max_points: int = 1500,
    seed: int = 0,
) -> Figure:
    """A square scatter of ``y`` against ``x`` on [0, 1] x [0, 1] with the identity line; at most
    ``max_points`` points (a seeded random subset) so dense clouds stay readable."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size > max_points:
        keep = np.random.default_rng(seed).choice(x.size, max_points, replace=False)
        x, y = x[keep], y[keep]
    figure = _figure(3.2, 3.3)
    ax = figure.add_subplot()
    ax.set_box_aspect(1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, loc="left")
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linestyle=(0, (4, 3)), linewidth=1)
    ax.scatter(np.clip(x, 0, 1), np.clip(y, 0, 1), s=3, color="#1f77b4", alpha=0.35, linewidths=0)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    return figure
