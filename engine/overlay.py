"""Pictures of occlusion heatmaps: a colour map, PNG overlays on the model's input, an HTML gallery.

No plotting library: the colour map is a small table interpolated in numpy, images are
written with Pillow, the gallery is one static HTML page linking the PNGs.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Perceptually ordered "inferno"-like ramp: black -> purple -> orange -> pale yellow.
_RAMP = np.array(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    np.float64,
)


def colorize(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """``[H, W]`` values -> uint8 RGB ``[H, W, 3]``; 0 and below black, ``vmax`` and above yellow."""
    values = np.asarray(values, np.float64)
    top = vmax if vmax is not None else max(float(values.max(initial=0.0)), 1e-12)
    t = np.clip(values / max(top, 1e-12), 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(t).astype(int)
    hi = np.minimum(lo + 1, len(_RAMP) - 1)
    frac = (t - lo)[..., None]
    return (_RAMP[lo] * (1 - frac) + _RAMP[hi] * frac).round().astype(np.uint8)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image.astype(np.uint8)


def overlay_png(
    path: str | Path,
    image: np.ndarray,
    pixel_map: np.ndarray,
    *,
    peak_box: Sequence[int] | None = None,
    lesion_box: Sequence[int] | None = None,
    alpha: float = 0.55,
    scale: int = 2,
) -> Path:
    """Write ``[input | heatmap over input]`` side by side; boxes are (y0, x0, y1, x1).

    The heat is the drop in the target's probability (positive part, scaled to this image's
    largest drop); the peak window is outlined in cyan, a known lesion in green.
    """
    rgb = _as_rgb(image)
    heat = colorize(np.maximum(pixel_map, 0.0))
    blend = (rgb * (1 - alpha) + heat * alpha).round().astype(np.uint8)
    h, w = rgb.shape[:2]
    canvas = Image.new("RGB", (2 * w + 4, h), "white")
    canvas.paste(Image.fromarray(rgb), (0, 0))
    canvas.paste(Image.fromarray(blend), (w + 4, 0))
    canvas = canvas.resize(((2 * w + 4) * scale, h * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for box, color in ((lesion_box, (0, 230, 0)), (peak_box, (0, 230, 255))):
        if box is None or box[0] < 0:
            continue
        y0, x0, y1, x1 = (int(v) * scale for v in box)
        for offset in (0, (w + 4) * scale):
            draw.rectangle(
                (x0 + offset, y0, x1 + offset - 1, y1 - 1), outline=color, width=max(1, scale)
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


@dataclasses.dataclass(frozen=True)
class GalleryItem:
    """One card of the gallery."""

    png: str  # relative to the gallery page
    title: str  # usually the image path
    lines: tuple[str, ...]  # short facts: prediction, target, largest drop, lesion hit
    flag: str = ""  # "hit" | "miss" | "": colours the card border


def gallery_html(title: str, summary: Sequence[str], items: Sequence[GalleryItem]) -> str:
    """A static page: summary lines, then a grid of overlay cards."""
    style = (
        "body{font-family:sans-serif;margin:20px}.grid{display:flex;flex-wrap:wrap;gap:10px}"
        ".card{border:3px solid #ccc;padding:6px;width:300px;font-size:12px}.card img{width:100%}"
        ".hit{border-color:#2ca02c}.miss{border-color:#d62728}.t{font-weight:bold;word-break:break-all}"
    )
    cards = "".join(
        f'<div class="card {item.flag}"><img src="{html.escape(item.png)}" loading="lazy">'
        f"<div class=t>{html.escape(item.title)}</div>"
        + "".join(f"<div>{html.escape(line)}</div>" for line in item.lines)
        + "</div>"
        for item in items
    )
    head = "".join(f"<p>{html.escape(line)}</p>" for line in summary)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{head}"
        f"<div class=grid>{cards}</div></body></html>\n"
    )
