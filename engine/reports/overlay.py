"""Pictures of occlusion heatmaps: a colour map, PNG overlays (on the original image, or on the
model's input), an HTML gallery.

The overlays are pixels, not charts: the colour map is a small table interpolated in numpy and
the images are written with Pillow; the gallery is one static page linking the PNGs, from the
jinja2 template ``templates/gallery.html.j2``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from data_pipelines.preprocess import CentreCrop
from engine.reports.pages import render

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
    """``[H, W]`` values -> uint8 RGB ``[H, W, 3]``; 0 and below black, ``vmax`` and above
    yellow."""
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


def _write_side_by_side(
    path: str | Path,
    rgb: np.ndarray,
    blend: np.ndarray,
    boxes: Sequence[tuple[np.ndarray | Sequence[float] | None, tuple[int, int, int]]],
    line_width: int,
) -> Path:
    """``[rgb | blend]`` with a 4 px white gap; each (y0, x0, y1, x1) box outlined on both."""
    h, w = rgb.shape[:2]
    canvas = Image.new("RGB", (2 * w + 4, h), "white")
    canvas.paste(Image.fromarray(rgb), (0, 0))
    canvas.paste(Image.fromarray(blend), (w + 4, 0))
    draw = ImageDraw.Draw(canvas)
    for box, color in boxes:
        if box is None or box[0] < 0:
            continue
        y0, x0, y1, x1 = (round(float(v)) for v in box)
        for offset in (0, w + 4):
            draw.rectangle(
                (x0 + offset, y0, x1 + offset - 1, y1 - 1), outline=color, width=line_width
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


LESION_COLOR, PEAK_COLOR = (0, 230, 0), (0, 230, 255)


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
    """Write ``[input | heatmap over input]`` on the model input (``scale`` x, nearest).

    The heat is the drop in the target's probability (positive part, scaled to this image's
    largest drop); boxes are (y0, x0, y1, x1) model-input pixels: the peak window in cyan, a
    known lesion in green. :func:`overlay_on_original_png` draws on the original file instead.
    """
    rgb = _as_rgb(image)
    heat = colorize(np.maximum(pixel_map, 0.0))
    blend = (rgb * (1 - alpha) + heat * alpha).round().astype(np.uint8)
    big = lambda a: np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
    boxes = [
        (None if b is None else np.asarray(b, np.float64) * (scale if b[0] >= 0 else 1), c)
        for b, c in ((lesion_box, LESION_COLOR), (peak_box, PEAK_COLOR))
    ]
    return _write_side_by_side(path, big(rgb), big(blend), boxes, max(1, scale))


MAX_OVERLAY_SIDE = 1024  # originals larger than this (longer side) are downscaled for the PNG


def overlay_on_original_png(
    path: str | Path,
    original: np.ndarray,
    pixel_map: np.ndarray,
    *,
    input_size: int,
    resize_size: int,
    peak_box: Sequence[float] | None = None,
    lesion_box: Sequence[float] | None = None,
    alpha: float = 0.55,
    max_side: int = MAX_OVERLAY_SIDE,
) -> Path:
    """Write ``[original | heatmap over original]``: the model-input heat mapped back through
    the centre crop onto the original pixels (no heat outside the crop, which the model never
    saw). Originals whose longer side exceeds ``max_side`` are downscaled by
    ``max_side / max(h, w)`` for the PNG. Boxes are model-input pixels, as in
    :func:`overlay_png`, and are mapped the same way.
    """
    rgb = _as_rgb(original)
    h, w = rgb.shape[:2]
    f = min(1.0, max_side / max(h, w))
    if f < 1.0:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    dh, dw = rgb.shape[:2]
    crop = CentreCrop((h, w), input_size, resize_size)
    top, left, per_input_px = crop.top, crop.left, crop.pixels_per_input
    # model-input pixel under each display pixel's centre (nearest), -1 outside the crop
    iy = np.floor(((np.arange(dh) + 0.5) / f - top) / per_input_px).astype(int)
    ix = np.floor(((np.arange(dw) + 0.5) / f - left) / per_input_px).astype(int)
    inside = ((iy >= 0) & (iy < input_size))[:, None] & ((ix >= 0) & (ix < input_size))[None, :]
    heat_map = np.maximum(np.asarray(pixel_map, np.float64), 0.0)
    values = heat_map[np.clip(iy, 0, input_size - 1)][:, np.clip(ix, 0, input_size - 1)]
    heat = colorize(values, vmax=max(float(heat_map.max(initial=0.0)), 1e-12))
    blend = np.where(inside[..., None], rgb * (1 - alpha) + heat * alpha, rgb)
    blend = blend.round().astype(np.uint8)

    def to_display(box):
        if box is None or box[0] < 0:
            return None
        return crop.to_original(box) * f

    boxes = [(to_display(lesion_box), LESION_COLOR), (to_display(peak_box), PEAK_COLOR)]
    return _write_side_by_side(path, rgb, blend, boxes, max(1, round(max(dh, dw) / 256)))


@dataclasses.dataclass(frozen=True)
class GalleryItem:
    """One card of the gallery."""

    png: str  # relative to the gallery page
    title: str  # usually the image path
    lines: tuple[str, ...]  # short facts: prediction, target, largest drop, lesion hit
    flag: str = ""  # "hit" | "miss" | "": colours the card border


def gallery_html(title: str, summary: Sequence[str], items: Sequence[GalleryItem]) -> str:
    """A static page: summary lines, then a grid of overlay cards."""
    return render("gallery.html.j2", title=title, summary=list(summary), items=list(items))
