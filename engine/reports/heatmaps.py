"""What an occlusion study leaves on disk: ``heatmaps.npz``, overlay PNGs, ``index.html`` and
``summary.json`` with the paper's lesion check (does the largest drop fall on the lesion?).

``heatmaps.npz`` (``np.load(..., allow_pickle=False)`` reads it; row n is image n):
``paths`` [N] str, ``labels`` [N] (-1 when unknown), ``targets`` [N], ``probabilities`` [N, K]
(unoccluded softmax), ``drops`` [N, len(ys), len(xs)] float32 (window grid), ``maps`` [N, H, W]
float16 (pixel maps at model-input resolution, see ``OcclusionResult.pixel_maps``), ``ys``,
``xs``, ``peak_boxes`` [N, 4], ``class_names``, ``window``, ``stride``, ``fill``, and, when
lesion boxes were given, ``lesion_boxes`` [N, 4] (model-input pixels, -1 if none) and
``lesion_hits`` / ``lesion_hits_centre`` [N] bool (the two rules of ``lesion_hits``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.anchors import OCCLUSION_LESION_CHECK as PAPER_LESION
from engine.occlusion.sweep import LESION_RULES, OcclusionConfig, OcclusionResult, lesion_hits
from engine.reports.overlay import GalleryItem, gallery_html, overlay_on_original_png, overlay_png


def lesion_summary(
    result: OcclusionResult, boxes: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Fraction of images with a visible lesion whose largest-drop window falls on it, overall
    and per true class, by both rules of :func:`engine.occlusion.sweep.lesion_hits` ("overlap" is
    the headline). The paper (:data:`engine.anchors.OCCLUSION_LESION_CHECK`): 94.7% overall;
    drusen 100%, CNV 94.0%, DME 91.0%."""
    has_lesion = np.asarray(boxes)[:, 0] >= 0
    out: dict[str, Any] = {
        "definition": {
            "overlap": "the largest-drop window covers part of the lesion box",
            "centre": "the largest-drop window's centre lies inside the lesion box",
        },
        "images_with_lesion": int(has_lesion.sum()),
    }
    for rule in LESION_RULES:
        hits = lesion_hits(result, boxes, rule)
        per_class = {}
        for c, name in enumerate(class_names):
            sel = has_lesion & (labels == c)
            if sel.any():
                per_class[name] = {
                    "images": int(sel.sum()),
                    "hits": int(hits[sel].sum()),
                    "fraction": float(hits[sel].mean()),
                }
        out[rule] = {
            "hits": int(hits[has_lesion].sum()),
            "fraction": float(hits[has_lesion].mean()) if has_lesion.any() else None,
            "per_class": per_class,
        }
    out["paper"] = {**PAPER_LESION, "per_class": dict(PAPER_LESION["per_class"])}
    return out


def _read_original(path: str) -> np.ndarray | None:
    """The file's pixels as uint8 RGB (as the preprocessing decodes them), None if unreadable."""
    from data_pipelines.integrity import BadImageError
    from data_pipelines.preprocess import decode, to_channels

    try:
        return np.asarray(to_channels(decode(path, draft=False), 3))
    except BadImageError:
        return None


def _png_name(index: int, path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem)[:60]
    return f"overlays/{index:05d}_{stem}.png"


def write_study(
    out_dir: str | Path,
    result: OcclusionResult,
    images: np.ndarray,
    paths: Sequence[str],
    class_names: Sequence[str],
    config: OcclusionConfig,
    *,
    labels: np.ndarray | None = None,
    lesion_boxes: np.ndarray | None = None,
    provenance: dict[str, Any] | None = None,
    overlays: bool = True,
    progress: Callable[[int, int], None] | None = None,
    geometry: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Write the npz, overlays, gallery and summary for one study; returns the summary.

    ``geometry``: the preprocessing's ``(input_size, resize_size)``. When given, each overlay
    is drawn on the original file ``paths[i]`` (re-read; the heat mapped back through the
    centre crop, see ``engine.reports.overlay.overlay_on_original_png``); a file that cannot be
    re-read, or no ``geometry``, gets the overlay on the model input ``images[i]``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = len(paths)
    labels = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    maps = result.pixel_maps()
    peaks = result.peak_boxes()
    arrays: dict[str, Any] = {
        "paths": np.asarray(list(paths), dtype=str),
        "labels": labels,
        "targets": result.targets,
        "probabilities": result.probabilities.astype(np.float32),
        "drops": result.drops,
        "maps": maps.astype(np.float16),
        "ys": result.ys,
        "xs": result.xs,
        "peak_boxes": peaks,
        "class_names": np.asarray(list(class_names), dtype=str),
        "window": config.window,
        "stride": config.stride,
        "fill": np.asarray(config.fill),
    }
    summary: dict[str, Any] = {
        "images": n,
        "window": config.window,
        "stride": config.stride,
        "fill": config.fill,
        "method": config.method,
        **dict(zip(("tau", "drill_down"), config.approximation, strict=True)),
        "windows_per_image": int(result.drops.shape[1] * result.drops.shape[2]),
        "input_shape": list(result.image_shape),
        **(provenance or {}),
    }
    hits = None
    if lesion_boxes is not None:
        boxes = np.asarray(lesion_boxes, np.float64)
        hits = lesion_hits(result, boxes, "overlap")
        arrays.update(
            lesion_boxes=boxes.astype(np.float32),
            lesion_hits=hits,
            lesion_hits_centre=lesion_hits(result, boxes, "centre"),
        )
        summary["lesion_check"] = lesion_summary(result, boxes, labels, class_names)
    np.savez(out / "heatmaps.npz", **arrays)

    items = []
    for i, path in enumerate(paths):
        png = _png_name(i, path)
        box = None if lesion_boxes is None else lesion_boxes[i]
        if overlays:
            original = _read_original(path) if geometry is not None else None
            if original is not None:
                overlay_on_original_png(
                    out / png,
                    original,
                    maps[i],
                    input_size=geometry[0],
                    resize_size=geometry[1],
                    peak_box=peaks[i],
                    lesion_box=box,
                )
            else:
                overlay_png(out / png, images[i], maps[i], peak_box=peaks[i], lesion_box=box)
        target = int(result.targets[i])
        lines = [
            (
                f"predicted {class_names[int(np.argmax(result.probabilities[i]))]} "
                f"({100 * result.probabilities[i].max():.1f}%)"
            ),
            f"target {class_names[target]}: largest drop {result.drops[i].max():.3f}",
        ]
        if labels[i] >= 0:
            lines.insert(0, f"label {class_names[labels[i]]}")
        flag = ""
        if hits is not None and box is not None and box[0] >= 0:
            flag = "hit" if hits[i] else "miss"
            lines.append("largest drop on the lesion" if hits[i] else "largest drop off the lesion")
        items.append(GalleryItem(png, path, tuple(lines), flag))
        if progress is not None:
            progress(i + 1, n)
    lines = [
        (
            f"{n} images, window {config.window} px, stride {config.stride} px, fill {config.fill}; "
            "heat = drop of the target class's probability when the box covers that spot "
            "(cyan: largest-drop window, green: known lesion)."
        )
    ]
    check = summary.get("lesion_check")
    if check and check["images_with_lesion"]:
        for rule in LESION_RULES:
            c = check[rule]
            per = ", ".join(f"{k} {100 * v['fraction']:.1f}%" for k, v in c["per_class"].items())
            lines.append(
                f"Lesion check ({check['definition'][rule]}): {c['hits']}/"
                f"{check['images_with_lesion']} = {100 * c['fraction']:.1f}% ({per}); "
                f"paper {100 * PAPER_LESION['fraction']:.1f}% on "
                f"{PAPER_LESION['images']} OCT images."
            )
    if overlays:
        (out / "index.html").write_text(
            gallery_html("Occlusion heatmaps", lines, items), encoding="utf-8"
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
