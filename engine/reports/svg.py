"""Inline SVG charts for the HTML reports: ROC curves and a confusion matrix.

Plain strings, no plotting library (none is in the environment and reports must open
anywhere): every chart is a self-contained ``<svg>`` element to paste into a page.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence

import numpy as np

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


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


def _thin(fpr: np.ndarray, tpr: np.ndarray, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_points`` points (always the first and last) so pages stay small."""
    if fpr.size <= max_points:
        return fpr, tpr
    keep = np.unique(np.r_[np.linspace(0, fpr.size - 1, max_points).astype(int), fpr.size - 1])
    return fpr[keep], tpr[keep]


def _marker(shape: str, x: float, y: float, color: str, title: str) -> str:
    t = f"<title>{html.escape(title)}</title>"
    if shape == "diamond":
        return (
            f'<polygon points="{x},{y - 6} {x + 6},{y} {x},{y + 6} {x - 6},{y}" fill="{color}" '
            f'stroke="black" stroke-width="0.8">{t}</polygon>'
        )
    if shape == "square":
        return (
            f'<rect x="{x - 4.5}" y="{y - 4.5}" width="9" height="9" fill="{color}" stroke="black" '
            f'stroke-width="0.8">{t}</rect>'
        )
    return f'<circle cx="{x}" cy="{y}" r="4.5" fill="{color}" stroke="black" stroke-width="0.8">{t}</circle>'


def roc_svg(
    title: str,
    series: Sequence[RocSeries],
    markers: Sequence[RocMarker] = (),
    *,
    size: int = 360,
    zoom: float | None = None,
) -> str:
    """An ROC chart; ``zoom`` (e.g. 0.2) shows only FPR <= zoom and TPR >= 1 - zoom."""
    pad_l, pad_t, pad_r = 48, 28, 12  # the x-axis labels and title take 40 px below the plot
    plot = size - pad_l - pad_r
    lo_x, hi_x = 0.0, zoom if zoom else 1.0
    lo_y, hi_y = (1.0 - zoom if zoom else 0.0), 1.0

    def px(fpr: float) -> float:
        return round(pad_l + (fpr - lo_x) / (hi_x - lo_x) * plot, 2)

    def py(tpr: float) -> float:
        return round(pad_t + (hi_y - tpr) / (hi_y - lo_y) * plot, 2)

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(size, 480)}" '
            f'height="{size + 22 + 18 * (len(series) + len(markers))}" '
            f'font-family="sans-serif" font-size="11">'
        ),
        f'<text x="{pad_l}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        (
            f'<defs><clipPath id="c{id(series)}"><rect x="{pad_l}" y="{pad_t}" width="{plot}" height="{plot}"/>'
            "</clipPath></defs>"
        ),
        f'<rect x="{pad_l}" y="{pad_t}" width="{plot}" height="{plot}" fill="white" stroke="#444"/>',
    ]
    for k in range(6):
        fx, fy = lo_x + k * (hi_x - lo_x) / 5, lo_y + k * (hi_y - lo_y) / 5
        parts.append(
            f'<line x1="{px(fx)}" y1="{pad_t}" x2="{px(fx)}" y2="{pad_t + plot}" stroke="#eee"/>'
        )
        parts.append(
            f'<line x1="{pad_l}" y1="{py(fy)}" x2="{pad_l + plot}" y2="{py(fy)}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{px(fx)}" y="{pad_t + plot + 14}" text-anchor="middle">{fx:.2f}</text>'
        )
        parts.append(f'<text x="{pad_l - 4}" y="{py(fy) + 4}" text-anchor="end">{fy:.2f}</text>')
    parts.append(
        f'<text x="{pad_l + plot / 2}" y="{pad_t + plot + 30}" text-anchor="middle">'
        "false-positive rate (1 - specificity)</text>"
    )
    parts.append(
        f'<text transform="translate(12,{pad_t + plot / 2}) rotate(-90)" text-anchor="middle">'
        "sensitivity</text>"
    )
    clip = f'clip-path="url(#c{id(series)})"'
    if not zoom:
        parts.append(
            f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#bbb" '
            'stroke-dasharray="4 3"/>'
        )
    legend_y = size + 22  # below the axis title
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        fpr, tpr = _thin(np.asarray(s.fpr, float), np.asarray(s.tpr, float))
        points = " ".join(f"{px(a)},{py(b)}" for a, b in zip(fpr, tpr))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2" {clip}/>'
        )
        parts.append(
            f'<line x1="{pad_l}" y1="{legend_y - 4}" x2="{pad_l + 18}" y2="{legend_y - 4}" '
            f'stroke="{color}" stroke-width="2"/><text x="{pad_l + 24}" y="{legend_y}">'
            f"{html.escape(s.label)}</text>"
        )
        legend_y += 18
    for i, m in enumerate(markers):
        color = PALETTE[(i + len(series)) % len(PALETTE)]
        inside = lo_x <= m.fpr <= hi_x and lo_y <= m.tpr <= hi_y
        if inside:
            parts.append(_marker(m.shape, px(m.fpr), py(m.tpr), color, m.label))
        parts.append(_marker(m.shape, pad_l + 9, legend_y - 4, color, m.label))
        note = "" if inside else " (outside the zoomed area)"
        parts.append(f'<text x="{pad_l + 24}" y="{legend_y}">{html.escape(m.label)}{note}</text>')
        legend_y += 18
    parts.append("</svg>")
    return "\n".join(parts)


def confusion_svg(counts: np.ndarray, class_names: Sequence[str], *, cell: int = 64) -> str:
    """Confusion matrix (rows true, columns predicted): counts and row percentages, shaded."""
    counts = np.asarray(counts)
    k = len(class_names)
    left, top = 90, 60
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    width, height = left + k * cell + 10, top + k * cell + 30
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            'font-size="11">'
        ),
        f'<text x="{left + k * cell / 2}" y="14" text-anchor="middle" font-weight="bold">predicted</text>',
        (
            f'<text transform="translate(14,{top + k * cell / 2}) rotate(-90)" text-anchor="middle" '
            'font-weight="bold">true</text>'
        ),
    ]
    for j, name in enumerate(class_names):
        parts.append(
            f'<text x="{left + j * cell + cell / 2}" y="{top - 8}" text-anchor="middle">'
            f"{html.escape(str(name))}</text>"
        )
        parts.append(
            f'<text x="{left - 6}" y="{top + j * cell + cell / 2 + 4}" text-anchor="end">'
            f"{html.escape(str(name))}</text>"
        )
    for i in range(k):
        for j in range(k):
            level = share[i, j]
            shade = round(255 - 200 * float(level))
            color = f"rgb({shade},{shade},255)" if i == j else f"rgb(255,{shade},{shade})"
            x, y = left + j * cell, top + i * cell
            ink = "white" if level > 0.6 else "black"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{color}" stroke="#888"/>'
            )
            parts.append(
                f'<text x="{x + cell / 2}" y="{y + cell / 2}" text-anchor="middle" fill="{ink}" '
                f'font-size="14">{int(counts[i, j])}</text>'
            )
            parts.append(
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 15}" text-anchor="middle" fill="{ink}">'
                f"{100 * level:.1f}%</text>"
            )
    parts.append("</svg>")
    return "\n".join(parts)


def range_strip_svg(
    title: str,
    value: float,
    low: float,
    high: float,
    *,
    mean: float | None = None,
    scale_max: float | None = None,
    width: int = 480,
) -> str:
    """A horizontal strip: a reference range (e.g. the experts' weighted errors) and our value."""
    scale_max = scale_max or max(high, value) * 1.15 or 1.0
    left, plot = 10, width - 20

    def px(v: float) -> float:
        return round(left + min(max(v, 0.0), scale_max) / scale_max * plot, 2)

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="74" font-family="sans-serif" '
            'font-size="11">'
        ),
        f'<text x="{left}" y="14" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="40" x2="{left + plot}" y2="40" stroke="#444"/>',
        f'<rect x="{px(low)}" y="32" width="{px(high) - px(low)}" height="16" fill="#cfe3f7" stroke="#1f77b4"/>',
        f'<text x="{px(low)}" y="64">{100 * low:.1f}%</text>',
        f'<text x="{px(high)}" y="64" text-anchor="end">{100 * high:.1f}%</text>',
    ]
    if mean is not None:
        parts.append(
            f'<line x1="{px(mean)}" y1="30" x2="{px(mean)}" y2="50" stroke="#1f77b4" stroke-width="2"/>'
        )
    parts.append(f'<circle cx="{px(value)}" cy="40" r="5" fill="#d62728" stroke="black"/>')
    parts.append(
        f'<text x="{px(value)}" y="27" text-anchor="middle" fill="#d62728">ours {100 * value:.1f}%'
        "</text></svg>"
    )
    return "\n".join(parts)


def scatter_svg(
    title: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_label: str,
    y_label: str,
    size: int = 260,
    max_points: int = 1500,
    seed: int = 0,
) -> str:
    """A square scatter of ``y`` against ``x`` on [0, 1] x [0, 1] with the identity line.

    At most ``max_points`` points (a seeded random subset) so the page stays small.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size > max_points:
        keep = np.random.default_rng(seed).choice(x.size, max_points, replace=False)
        x, y = x[keep], y[keep]
    left, top, plot = 40, 24, size - 56
    px = lambda v: round(left + float(np.clip(v, 0, 1)) * plot, 1)
    py = lambda v: round(top + (1 - float(np.clip(v, 0, 1))) * plot, 1)
    dots = "".join(
        f'<circle cx="{px(a)}" cy="{py(b)}" r="1.2"/>' for a, b in zip(x, y, strict=True)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" font-family="sans-serif" '
        f'font-size="11"><text x="{left}" y="14" font-weight="bold">{html.escape(title)}</text>'
        f'<rect x="{left}" y="{top}" width="{plot}" height="{plot}" fill="none" stroke="#444"/>'
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#bbb" stroke-dasharray="4 3"/>'
        f'<g fill="#1f77b4" fill-opacity="0.35">{dots}</g>'
        f'<text x="{left + plot / 2}" y="{size - 8}" text-anchor="middle">{html.escape(x_label)}</text>'
        f'<text x="12" y="{top + plot / 2}" text-anchor="middle" transform="rotate(-90 12 {top + plot / 2})">'
        f"{html.escape(y_label)}</text></svg>"
    )
