"""A synthetic OCT-like data set with planted lesions whose boxes are known.

Tests and the occlusion work need images where the right answer is known: each non-NORMAL
image carries one planted lesion (CNV: a bright blob above the pigment epithelium; DME: a dark
fluid pocket inside the retina; DRUSEN: bright domes on the epithelium) and its bounding box
``(y0, x0, y1, x1)`` (end-exclusive, original pixels). Everything is a pure function of
``(seed, split, index)``: in memory (``synthetic_source``) or written as PNG files in the
OCT2017 layout with a ``boxes.json`` beside them (``write_synthetic``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from PIL import Image

from data_pipelines.datasets import OCT_CLASSES
from data_pipelines.records import Box, ExampleRecord, ImageSource

CLASS_NAMES = OCT_CLASSES
DEFAULT_SIZE = (128, 160)  # (height, width)
DEFAULT_PER_CLASS = {"train": 16, "val": 4, "test": 8}
_SPLIT_IDS = {"train": 1, "val": 2, "test": 3}
_IMAGES_PER_PATIENT = 2
BOXES_FILE = "boxes.json"


@dataclasses.dataclass(frozen=True)
class SyntheticPlan:
    """Everything needed to render one image; the box is known before any pixel is drawn."""

    seed: int
    split: str
    index: int
    label: int
    patient: str
    name: str  # relative path in the written layout, e.g. "train/CNV/CNV-1000-1.png"
    size: tuple[int, int]
    lesion_box: Box | None
    lesion: tuple[float, ...]  # class-specific shape parameters


def _rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_IDS[split], index, stream])


def _retina(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Top surface and pigment-epithelium rows (float, per column) of a gently curved retina."""
    x = np.arange(width) / width
    top = height * (0.28 + 0.04 * np.sin(2 * np.pi * (x * rng.uniform(0.5, 1.0) + rng.uniform())))
    thickness = height * rng.uniform(0.30, 0.36)
    return top, top + thickness


def plan(
    seed: int, split: str, index: int, label: int, size: tuple[int, int] = DEFAULT_SIZE
) -> SyntheticPlan:
    """Draw the layout and lesion of image ``index`` of ``split`` (class ``label``)."""
    height, width = size
    rng = _rng(seed, split, index, 0)
    top, rpe = _retina(height, width, _rng(seed, split, index, 1))
    name = CLASS_NAMES[label]
    cx = int(rng.uniform(0.3, 0.7) * width)
    box: Box | None = None
    lesion: tuple[float, ...] = ()
    if name == "CNV":
        ry, rx = rng.uniform(0.07, 0.10) * height, rng.uniform(0.08, 0.12) * width
        cy = rpe[cx] - 0.8 * ry
        lesion, box = (cy, cx, ry, rx), _ellipse_box(cy, cx, ry, rx, size)
    elif name == "DME":
        ry, rx = rng.uniform(0.06, 0.09) * height, rng.uniform(0.07, 0.11) * width
        cy = (top[cx] + rpe[cx]) / 2
        lesion, box = (cy, cx, ry, rx), _ellipse_box(cy, cx, ry, rx, size)
    elif name == "DRUSEN":
        r = rng.uniform(0.04, 0.055) * width
        centres = [cx - 2.2 * r, cx, cx + 2.2 * r]
        heights = rng.uniform(0.7, 1.0, size=3) * r
        lesion = (r, *centres, *heights)
        y0 = min(rpe[int(np.clip(c, 0, width - 1))] - h for c, h in zip(centres, heights))
        y1 = max(rpe[int(np.clip(c, 0, width - 1))] for c in centres) + 2
        box = _clip_box(y0, centres[0] - r, y1, centres[-1] + r, size)
    pid = 1000 * _SPLIT_IDS[split] + index // _IMAGES_PER_PATIENT
    rel = f"{split}/{name}/{name}-{seed}{pid:05d}-{index % _IMAGES_PER_PATIENT + 1}.png"
    return SyntheticPlan(seed, split, index, label, f"{seed}{pid:05d}", rel, size, box, lesion)


def _ellipse_box(cy: float, cx: float, ry: float, rx: float, size: tuple[int, int]) -> Box:
    return _clip_box(cy - ry, cx - rx, cy + ry, cx + rx, size)


def _clip_box(y0: float, x0: float, y1: float, x1: float, size: tuple[int, int]) -> Box:
    height, width = size
    return (
        max(0, int(np.floor(y0))),
        max(0, int(np.floor(x0))),
        min(height, int(np.ceil(y1)) + 1),
        min(width, int(np.ceil(x1)) + 1),
    )


def render(p: SyntheticPlan) -> np.ndarray:
    """The grey uint8 image [H, W] of a plan: layered retina, speckle, the planted lesion."""
    height, width = p.size
    top, rpe = _retina(height, width, _rng(p.seed, p.split, p.index, 1))
    noise = _rng(p.seed, p.split, p.index, 2)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = (yy - top[None, :]) / (rpe - top)[None, :]  # 0 at the surface, 1 at the epithelium
    img = np.full((height, width), 18.0, np.float32)
    inside = (depth >= 0) & (depth < 1)
    img[inside] = 70 + 50 * np.cos(depth[inside] * 7.0) ** 2
    img[np.abs(yy - rpe[None, :]) < 2.5] = 205
    below = yy >= rpe[None, :] + 2.5
    img[below] = 95 * np.exp(-(yy - rpe[None, :])[below] / (0.15 * height))
    name = CLASS_NAMES[p.label]
    if name in ("CNV", "DME"):
        cy, cx, ry, rx = p.lesion
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        img[blob] = 235 if name == "CNV" else 10
    elif name == "DRUSEN":
        r, *rest = p.lesion
        centres, heights = rest[:3], rest[3:]
        for c, h in zip(centres, heights):
            base = rpe[int(np.clip(c, 0, width - 1))]
            dome = (((xx - c) / r) ** 2 + ((yy - base) / h) ** 2 <= 1.0) & (yy <= base)
            img[dome] = 230
    img *= noise.gamma(8.0, 1 / 8.0, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def plans(
    seed: int, split: str, per_class: int | None = None, size: tuple[int, int] = DEFAULT_SIZE
) -> list[SyntheticPlan]:
    """The plans of one split: ``per_class`` images of each class, class-major order."""
    n = DEFAULT_PER_CLASS[split] if per_class is None else per_class
    return [
        plan(seed, split, label * n + j, label, size)
        for label in range(len(CLASS_NAMES))
        for j in range(n)
    ]


class _RenderStore:
    """Renders a plan on access (picklable, so worker processes can use it)."""

    def __init__(self, plans_: list[SyntheticPlan]):
        self.plans = plans_

    def __getitem__(self, key: int) -> dict[str, np.ndarray]:
        return {"image": render(self.plans[key])}


def synthetic_source(
    split: str, *, seed: int = 0, per_class: int | None = None, size: tuple[int, int] = DEFAULT_SIZE
) -> ImageSource:
    """An in-memory synthetic split; ``src[i]["image"]`` is rendered on access."""
    if split not in _SPLIT_IDS:
        raise ValueError(f"synthetic: unknown split {split!r}; expected one of {tuple(_SPLIT_IDS)}")
    ps = plans(seed, split, per_class, size)
    records = [
        ExampleRecord(f"<synthetic seed={seed}>/{p.name}", p.label, p.patient, p.lesion_box, key=i)
        for i, p in enumerate(ps)
    ]
    return ImageSource("synthetic", split, CLASS_NAMES, records, store=_RenderStore(ps))


def write_synthetic(
    out_dir: str | Path,
    *,
    seed: int = 0,
    per_class: dict[str, int] | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> Path:
    """Write PNGs as ``out_dir/{split}/{CLASS}/CLASS-<patient>-<n>.png`` plus ``boxes.json``.

    ``boxes.json``: ``{"seed", "size", "class_names", "boxes": {relative path: [y0, x0, y1, x1]
    or null}}``. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    counts = per_class or {"train": DEFAULT_PER_CLASS["train"], "test": DEFAULT_PER_CLASS["test"]}
    boxes: dict[str, list[int] | None] = {}
    for split, n in counts.items():
        for p in plans(seed, split, n, size):
            target = out_dir / p.name
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render(p), mode="L").save(target)
            boxes[p.name] = list(p.lesion_box) if p.lesion_box else None
    meta = {"seed": seed, "size": list(size), "class_names": list(CLASS_NAMES), "boxes": boxes}
    (out_dir / BOXES_FILE).write_text(json.dumps(meta, indent=1))
    return out_dir


def read_boxes(root: str | Path) -> dict[str, Box | None]:
    """``boxes.json`` of a written synthetic set: relative path -> box (None for NORMAL).

    ``root``: the set's folder, or the ``boxes.json`` file itself. Raises FileNotFoundError
    when it is missing and ValueError naming the file when it is not valid boxes JSON.
    """
    path = Path(root)
    path = path if path.is_file() else path / BOXES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a folder written by write_synthetic")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))["boxes"]
        boxes = {
            str(name): tuple(int(v) for v in box) if box else None for name, box in raw.items()
        }
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path}: not a boxes file written by data_pipelines.synthetic "
            f"({type(err).__name__}: {err})"
        ) from None
    bad = next((name for name, box in boxes.items() if box is not None and len(box) != 4), None)
    if bad is not None:
        raise ValueError(f"{path}: box of {bad!r} is not [y0, x0, y1, x1]")
    return boxes
