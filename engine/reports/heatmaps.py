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

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_pipelines.integrity import BadImageError
from data_pipelines.preprocess import decode, to_channels
from engine.anchors import OCCLUSION_LESION_CHECK as PAPER_LESION
from engine.occlusion.sweep import LESION_RULES, OcclusionConfig, OcclusionResult, lesion_hits
from engine.reports.overlay import GalleryItem, gallery_html, overlay_on_original_png, overlay_png
from engine.reports.writers import write_npz, write_text

LESION_DEFINITIONS = {
    "overlap": "the largest-drop window covers part of the lesion box",
    "centre": "the largest-drop window's centre lies inside the lesion box",
}


@dataclasses.dataclass(frozen=True)
class RuleHits:
    """Images whose largest-drop window falls on the lesion by one rule, overall and per class."""

    hits: int
    fraction: float | None  # None: no image has a lesion
    per_class: dict[str, dict[str, float]]  # class -> {"images", "hits", "fraction"}


@dataclasses.dataclass(frozen=True)
class LesionCheck:
    """The paper's lesion check (:data:`engine.anchors.OCCLUSION_LESION_CHECK`) by both rules of
    ``lesion_hits``."""

    images_with_lesion: int
    overlap: RuleHits  # the headline rule
    centre: RuleHits

    def rule(self, name: str) -> RuleHits:
        return {"overlap": self.overlap, "centre": self.centre}[name]

    def to_dict(self) -> dict[str, Any]:
        """The ``lesion_check`` entry of ``summary.json``."""
        return {
            "definition": dict(LESION_DEFINITIONS),
            "images_with_lesion": self.images_with_lesion,
            **{rule: dataclasses.asdict(self.rule(rule)) for rule in LESION_RULES},
            "paper": {**PAPER_LESION, "per_class": dict(PAPER_LESION["per_class"])},
        }


def lesion_summary(
    result: OcclusionResult, boxes: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> LesionCheck:
    """Fraction of images with a visible lesion whose largest-drop window falls on it, overall
    and per true class, by both rules of :func:`engine.occlusion.sweep.lesion_hits` ("overlap" is
    the headline). The paper (:data:`engine.anchors.OCCLUSION_LESION_CHECK`): 94.7% overall;
    drusen 100%, CNV 94.0%, DME 91.0%."""
    has_lesion = np.asarray(boxes)[:, 0] >= 0
    rules = {}
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
        rules[rule] = RuleHits(
            hits=int(hits[has_lesion].sum()),
            fraction=float(hits[has_lesion].mean()) if has_lesion.any() else None,
            per_class=per_class,
        )
    return LesionCheck(int(has_lesion.sum()), **rules)


@dataclasses.dataclass(frozen=True)
class StudySummary:
    """What :func:`write_study` wrote and found; ``summary.json`` is :meth:`to_dict`."""

    images: int
    windows_per_image: int
    input_shape: tuple[int, int]
    config: OcclusionConfig
    lesion_check: LesionCheck | None
    provenance: dict[str, Any]  # run, method, timings, fidelity: written as given
    out_dir: Path

    def to_dict(self) -> dict[str, Any]:
        tau, drill_down = self.config.approximation
        out = {
            "images": self.images,
            "window": self.config.window,
            "stride": self.config.stride,
            "fill": self.config.fill,
            "method": self.config.method,
            "tau": tau,
            "drill_down": drill_down,
            "windows_per_image": self.windows_per_image,
            "input_shape": list(self.input_shape),
            **self.provenance,
        }
        if self.lesion_check is not None:
            out["lesion_check"] = self.lesion_check.to_dict()
        return out


def _read_original(path: str) -> np.ndarray | None:
    """The file's pixels as uint8 RGB (as the preprocessing decodes them), None if unreadable."""
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
    images: Sequence[np.ndarray] | np.ndarray,
    paths: Sequence[str],
    class_names: Sequence[str],
    config: OcclusionConfig,
    *,
    labels: np.ndarray | None = None,
    lesion_boxes: np.ndarray | None = None,
    provenance: dict[str, Any] | None = None,
    overlays: bool = True,
    progress: bool = False,
    geometry: tuple[int, int] | None = None,
) -> StudySummary:
    """Write the npz, overlays, gallery and summary for one study; returns the summary.

    ``images``: the model inputs, indexable by image (an array, or a sequence that reads one
    on demand), used only for overlays that cannot be drawn on the original. ``geometry``:
    the preprocessing's ``(input_size, resize_size)``. When given, each overlay is drawn on
    the original file ``paths[i]`` (re-read; the heat mapped back through the centre crop,
    see ``engine.reports.overlay.overlay_on_original_png``); a file that cannot be re-read,
    or no ``geometry``, gets the overlay on the model input ``images[i]``. ``progress``: a
    tqdm bar over the overlays.
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
    check = None
    hits = None
    if lesion_boxes is not None:
        boxes = np.asarray(lesion_boxes, np.float64)
        hits = lesion_hits(result, boxes, "overlap")
        arrays.update(
            lesion_boxes=boxes.astype(np.float32),
            lesion_hits=hits,
            lesion_hits_centre=lesion_hits(result, boxes, "centre"),
        )
        check = lesion_summary(result, boxes, labels, class_names)
    write_npz(out / "heatmaps.npz", arrays)

    items = []
    for i, path in enumerate(tqdm(paths, desc="overlays", disable=not (progress and overlays))):
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
    lines = [
        (
            f"{n} images, window {config.window} px, stride {config.stride} px, "
            f"fill {config.fill}; "
            "heat = drop of the target class's probability when the box covers that spot "
            "(cyan: largest-drop window, green: known lesion)."
        )
    ]
    if check is not None and check.images_with_lesion:
        for rule in LESION_RULES:
            c = check.rule(rule)
            per = ", ".join(f"{k} {100 * v['fraction']:.1f}%" for k, v in c.per_class.items())
            lines.append(
                f"Lesion check ({LESION_DEFINITIONS[rule]}): {c.hits}/"
                f"{check.images_with_lesion} = {100 * c.fraction:.1f}% ({per}); "
                f"paper {100 * PAPER_LESION['fraction']:.1f}% on "
                f"{PAPER_LESION['images']} OCT images."
            )
    if overlays:
        write_text(out / "index.html", gallery_html("Occlusion heatmaps", lines, items))
    summary = StudySummary(
        images=n,
        windows_per_image=int(result.drops.shape[1] * result.drops.shape[2]),
        input_shape=tuple(result.image_shape),
        config=config,
        lesion_check=check,
        provenance=dict(provenance or {}),
        out_dir=out,
    )
    write_text(out / "summary.json", json.dumps(summary.to_dict(), indent=1) + "\n")
    return summary
