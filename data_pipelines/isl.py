"""In Silico Labeling data: the published PNG layout as a random-access source of wells.

Layout (google/in-silico-labeling ``data.md``): ``DIR/{train,test}/<lab>/<condition>/<name>.png``
where each name carries well, z plane or MAXPROJECT, channel, mask and kind
(``data_pipelines.isl_naming``). Any folder nesting under a split is accepted; files are
grouped by image set (one well of one acquisition).

One example is one well:

- ``image`` float32 ``[H, W, Z]``: the transmitted-light z-stack (BRIGHTFIELD, PHASE_CONTRAST
  or DIC, one per well), ``Z`` planes picked at evenly spaced fractions of the well's focal
  range as upstream does (``round((n - 1) * f)``, f in linspace(0, 1, Z)), so stacks of
  different depth give the same input layout;
- ``target`` float32 ``[H, W, L]``: the MAXPROJECT fluorescence channels of the run's labels;
- ``target_mask`` float32 ``[H, W, L]``: 1 where a label's target is valid: the ``is_mask``
  image when the data give one, all ones when the channel is present, zeros for a label this
  well was not stained for (so one network learns labels from wells stained differently, the
  paper's design).

Pixels are scaled to [0, 1] by their PNG bit depth (16-bit as published, 8-bit accepted).
Splits are by well, never by crop: ``train``/``test`` are the folders; ``val`` is a seeded
carve of whole training wells.

Training batches are random crops (``make_crop_iterator``): an input window of the model's
input size and the target window of its output size at the same centre, cropped
identically (and flipped/rotated identically when augmenting). Evaluation tiles whole wells
(``tile_well`` / ``stitch_tiles``): output tiles abut, inputs overlap by the model's margin,
the image border is mirrored.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np
from jax.sharding import Mesh

from data_pipelines.device import check_batch_size
from data_pipelines.integrity import BadImageError
from data_pipelines.isl_naming import MAXPROJECT, TRANSMITTED, IslNameError, parse_image_name
from data_pipelines.layout import DatasetLayoutError
from data_pipelines.pipeline import _assemble  # the shared read -> batch -> mesh tail

log = logging.getLogger(__name__)

EXPECTED = (
    "DIR/{train,test}/<lab>/<condition>/lab-L,condition-C,...,well-W,z_depth-N,channel,"
    "value-PHASE_CONTRAST,is_mask-false,kind,value-ORIGINAL.png (and depth_computation,"
    "value-MAXPROJECT,channel,value-DAPI_CONFOCAL,... for the fluorescence targets)"
)
WHERE = (
    "The In Silico Labeling images (Christiansen et al., Cell 2018, CC BY 4.0) are at "
    "gs://in-silico-labeling/paper_data (see google/in-silico-labeling data.md); copy "
    "train/ and test/ and pass their parent as --data_dir. Nothing is downloaded at run time."
)


@dataclasses.dataclass(frozen=True)
class IslWell:
    """The files of one image set (one well of one acquisition)."""

    well_id: str  # condition/well
    image_set: str
    modality: str  # BRIGHTFIELD | PHASE_CONTRAST | DIC
    planes: tuple[str, ...]  # transmitted-light files by z index 0..n-1
    targets: dict[str, str]  # channel -> MAXPROJECT file
    masks: dict[str, str]  # channel -> is_mask-true file, where given


def scan_wells(folder: Path, condition: str | None = None) -> list[IslWell]:
    """Every image set under ``folder`` (recursively), sorted by well id.

    ``PREDICTED`` files (the paper's outputs) are left out. Raises naming the file when a
    name does not parse, a well has two transmitted modalities, or its z planes have gaps.
    """
    groups: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*.png")):
        name = parse_image_name(path)
        if name.kind == "PREDICTED":
            continue
        if condition is not None and name.get("condition") != condition:
            continue
        group = groups.setdefault(
            name.image_set,
            {"well_id": name.well_id, "planes": {}, "targets": {}, "masks": {}, "modality": set()},
        )
        if isinstance(name.z, int):
            if name.channel not in TRANSMITTED:
                raise IslNameError(path, f"z-plane of {name.channel}, not one of {TRANSMITTED}")
            if not name.is_mask:
                group["modality"].add(name.channel)
                group["planes"][name.z] = str(path)
        elif name.z == MAXPROJECT:
            group["masks" if name.is_mask else "targets"][name.channel] = str(path)
    wells = []
    for image_set, group in groups.items():
        first = next(iter(group["planes"].values()), None) or next(iter(group["targets"].values()))
        if len(group["modality"]) != 1:
            found = sorted(group["modality"]) or "none"
            raise IslNameError(
                first, f"image set {image_set} needs one transmitted modality, found {found}"
            )
        zs = sorted(group["planes"])
        if zs != list(range(len(zs))):
            raise IslNameError(
                first, f"image set {image_set}: z planes {zs} are not 0..{len(zs) - 1}"
            )
        wells.append(
            IslWell(
                group["well_id"],
                image_set,
                group["modality"].pop(),
                tuple(group["planes"][z] for z in zs),
                dict(group["targets"]),
                dict(group["masks"]),
            )
        )
    return sorted(wells, key=lambda w: (w.well_id, w.image_set))


def plane_indices(num_planes: int, wanted: int) -> list[int]:
    """Upstream's z selection: fractions linspace(0, 1, wanted) of the well's ``num_planes``."""
    fractions = np.linspace(0.0, 1.0, wanted) if wanted > 1 else np.array([0.5])
    return [round((num_planes - 1) * float(f)) for f in fractions]


def read_png(path: str) -> np.ndarray:
    """A grey PNG scaled to float32 [0, 1] by its bit depth; errors name the file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            pixels = np.asarray(image)
    except (OSError, ValueError, SyntaxError) as err:
        raise BadImageError(path, f"cannot decode PNG ({err})") from None
    if pixels.ndim != 2:
        raise BadImageError(path, f"expected a single-channel image, got mode {mode}")
    scale = 255.0 if pixels.dtype == np.uint8 else 65535.0
    return (pixels.astype(np.float32) / scale).clip(0.0, 1.0)


class IslSource:
    """Wells of one split; ``src[i]`` -> ``{"image", "target", "target_mask", "well"}``.

    Decoded wells are kept in memory (a well is read once per process), so random crops cost
    a slice, not a PNG decode.
    """

    def __init__(
        self,
        name: str,
        split: str,
        wells: Sequence[IslWell],
        labels: Sequence[str],
        z_planes: int,
        *,
        root: str | None = None,
    ):
        self.name, self.split, self.root = name, split, root
        self.wells = list(wells)
        self.labels = tuple(labels)
        self.z_planes = z_planes
        self._cache: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # The classification sources' name for the output names; the trainer reads this.
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.labels

    def __len__(self) -> int:
        return len(self.wells)

    def __repr__(self) -> str:
        return (
            f"IslSource({self.name!r}, split={self.split!r}, wells={len(self)}, "
            f"labels={self.labels})"
        )

    def __getstate__(self) -> dict[str, Any]:  # worker processes rebuild their own cache
        state = self.__dict__.copy()
        state["_cache"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def well_ids(self) -> list[str]:
        return [w.well_id for w in self.wells]

    def shape(self, index: int) -> tuple[int, int]:
        return self[index]["image"].shape[:2]

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        with self._lock:
            cached = self._cache.get(index)
        if cached is None:
            cached = self._read(self.wells[index])
            with self._lock:
                self._cache[index] = cached
        return cached

    def _read(self, well: IslWell) -> dict[str, Any]:
        planes = [read_png(well.planes[z]) for z in plane_indices(len(well.planes), self.z_planes)]
        shape = planes[0].shape
        targets, masks = [], []
        for label in self.labels:
            if label in well.targets:
                target = read_png(well.targets[label])
                mask = (
                    read_png(well.masks[label])
                    if label in well.masks
                    else np.ones(shape, np.float32)
                )
                mask = (mask > 0.5).astype(np.float32)
            else:
                target = mask = np.zeros(shape, np.float32)
            targets.append(target)
            masks.append(mask)
        files = [*well.planes, *well.targets.values(), *well.masks.values()]
        for path, image in zip(files, [*planes, *targets, *masks], strict=False):
            if image.shape != shape:
                raise BadImageError(path, f"size {image.shape} differs from the well's {shape}")
        return {
            "image": np.stack(planes, axis=-1),
            "target": np.stack(targets, axis=-1),
            "target_mask": np.stack(masks, axis=-1),
            "well": well.well_id,
        }

    def subset(self, indices: Sequence[int], *, split: str | None = None) -> IslSource:
        return IslSource(
            self.name,
            split or self.split,
            [self.wells[i] for i in indices],
            self.labels,
            self.z_planes,
            root=self.root,
        )


def carve_val(wells: Sequence[IslWell], val_fraction: float, seed: int) -> tuple[list, list]:
    """(train, val) whole wells; a seeded draw of ``round(n * val_fraction)`` wells (>= 1)."""
    if val_fraction <= 0:
        return list(wells), []
    order = np.random.default_rng(seed).permutation(len(wells))
    n_val = max(1, round(len(wells) * val_fraction))
    if n_val >= len(wells):
        raise DatasetLayoutError(
            f"val_fraction={val_fraction} leaves no training well of {len(wells)}"
        )
    val = sorted(order[:n_val].tolist())
    return [w for i, w in enumerate(wells) if i not in val], [wells[i] for i in val]


def open_isl(
    name: str,
    root: str | Path,
    *,
    split: str,
    labels: Sequence[str] | None,
    z_planes: int,
    val_fraction: float = 0.0,
    seed: int = 0,
    max_wells: int | None = None,
    condition: str | None = None,
) -> IslSource:
    """One split of an ISL folder. ``labels`` None: every MAXPROJECT channel of the train split.

    ``max_wells``: the first N training wells of a seeded order (the transfer experiment's
    1 / 2 / 4-well budgets); nested, so the 2-well set holds the 1-well one.
    """
    root = Path(root)
    folder = root / ("train" if split in ("train", "val") else split)
    if not folder.is_dir():
        raise DatasetLayoutError(
            f"{name}: no {folder.name}/ folder under {root}; expected {EXPECTED}. {WHERE}"
        )
    wells = scan_wells(folder, condition)
    if not wells:
        where = f" for condition {condition!r}" if condition else ""
        raise DatasetLayoutError(
            f"{name}: no ISL images{where} under {folder}; expected {EXPECTED}. {WHERE}"
        )
    if labels is None:
        train_wells = wells if split != "test" else scan_wells(root / "train", condition)
        labels = sorted({c for w in train_wells for c in w.targets})
    if split in ("train", "val"):
        train, val = carve_val(wells, val_fraction, seed)
        if split == "val" and not val:
            raise DatasetLayoutError(
                f"{name}: no val split; pass val_fraction > 0 to carve wells from train"
            )
        wells = train if split == "train" else val
        if split == "train" and max_wells is not None:
            order = np.random.default_rng(seed + 1).permutation(len(wells))
            wells = [wells[i] for i in sorted(order[:max_wells].tolist())]
    short = [w.well_id for w in wells if len(w.planes) < 2]
    if short:
        raise DatasetLayoutError(f"{name}: wells {short} have fewer than 2 z planes")
    source = IslSource(name, split, wells, labels, z_planes, root=str(root))
    log.info(
        "%s/%s: %d wells, labels %s, %d z planes", name, split, len(source), source.labels, z_planes
    )
    return source


# ----------------------------------------------------------------------------- crops


def crops_per_epoch(source: IslSource, out_size: int) -> int:
    """An epoch is as many crops as output windows tile the training wells once."""
    pixels = sum(int(np.prod(source.shape(i))) for i in range(len(source)))
    return max(1, pixels // (out_size * out_size))


def random_crop(
    example: dict[str, Any], in_size: int, out_size: int, rng: np.random.Generator, augment: bool
) -> dict[str, np.ndarray]:
    """An ``in_size`` input window and the ``out_size`` target window with the same centre.

    Positions are uniform over windows whose input lies inside the well. With ``augment`` the
    same random flip and quarter turn go to input, target and mask.
    """
    image = example["image"]
    height, width = image.shape[:2]
    if height < in_size or width < in_size:
        raise ValueError(
            f"well {example['well']} ({height}x{width}) is smaller than the input crop {in_size}"
        )
    top = int(rng.integers(0, height - in_size + 1))
    left = int(rng.integers(0, width - in_size + 1))
    margin = (in_size - out_size) // 2
    t, l = top + margin, left + margin
    crop = {
        "image": image[top : top + in_size, left : left + in_size],
        "target": example["target"][t : t + out_size, l : l + out_size],
        "target_mask": example["target_mask"][t : t + out_size, l : l + out_size],
    }
    if augment:
        turns, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
        for key, value in crop.items():
            value = np.rot90(value, turns, axes=(0, 1))
            crop[key] = value[:, ::-1] if flip else value
    return {k: np.ascontiguousarray(v, np.float32) for k, v in crop.items()}


class _CropReader(grain.transforms.RandomMap):
    """Position -> a random crop of well ``position % wells`` (picklable for workers)."""

    def __init__(self, source: IslSource, in_size: int, out_size: int, augment: bool):
        self.source, self.in_size, self.out_size, self.augment = source, in_size, out_size, augment

    def random_map(self, position: Any, rng: np.random.Generator) -> dict[str, Any]:
        index = int(position) % len(self.source)
        crop = random_crop(self.source[index], self.in_size, self.out_size, rng, self.augment)
        return crop | {"mask": np.True_, "index": np.int32(index)}


def make_crop_iterator(
    source: IslSource,
    *,
    in_size: int,
    out_size: int,
    global_batch_size: int,
    mesh: Mesh,
    seed: int,
    augment: bool = False,
    workers: int = 0,
    threads: int | None = None,
) -> grain.DatasetIterator:
    """Endless batches ``{"image" [B,in,in,Z], "target"/"target_mask" [B,out,out,L], "mask",
    "index"}`` as global arrays sharded on ``data``.

    Each epoch visits every well equally often (``crops_per_epoch`` crops, shuffled with
    ``seed``); crop positions and augmentations come from Grain's per-position generator, so
    a restored iterator (Orbax, ``get_state``) yields exactly the same crops.
    """
    if len(source) == 0:
        raise ValueError(f"{source!r} has no wells to train on")
    local_batch = check_batch_size(global_batch_size, mesh)
    epoch = max(crops_per_epoch(source, out_size), global_batch_size)
    epoch = -(-epoch // len(source)) * len(source)  # every well equally often
    ds = grain.MapDataset.range(epoch).seed(seed).shuffle().repeat(None)
    ds = ds[jax.process_index() :: jax.process_count()]
    ds = ds.random_map(_CropReader(source, in_size, out_size, augment))
    return _assemble(
        ds,
        local_batch=local_batch,
        drop_remainder=True,
        mesh=mesh,
        workers=workers,
        threads=threads,
    )


# ----------------------------------------------------------------------------- tiles


@dataclasses.dataclass(frozen=True)
class Tiling:
    """Where the output tiles of one well go: ``origins`` (row, col) in the padded output."""

    height: int
    width: int
    out_size: int
    origins: tuple[tuple[int, int], ...]


def tile_well(image: np.ndarray, in_size: int, out_size: int) -> tuple[np.ndarray, Tiling]:
    """Input tiles ``[N, in, in, Z]`` whose outputs abut and cover the whole well.

    The well is mirrored at its border by the model's margin (and up to a whole number of
    output tiles), so every pixel gets a prediction from a full input window.
    """
    height, width = image.shape[:2]
    margin = (in_size - out_size) // 2
    rows, cols = -(-height // out_size), -(-width // out_size)
    pad_h, pad_w = rows * out_size - height, cols * out_size - width
    padded = np.pad(
        image,
        ((margin, margin + pad_h), (margin, margin + pad_w), (0, 0)),
        mode="reflect" if margin < min(height, width) else "edge",
    )
    origins = tuple((r * out_size, c * out_size) for r in range(rows) for c in range(cols))
    tiles = np.stack([padded[r : r + in_size, c : c + in_size] for r, c in origins])
    return tiles.astype(np.float32), Tiling(height, width, out_size, origins)


def stitch_tiles(outputs: np.ndarray, tiling: Tiling) -> np.ndarray:
    """``[N, out, out, ...]`` tile outputs -> ``[H, W, ...]`` (inverse of :func:`tile_well`)."""
    rows = max(r for r, _ in tiling.origins) + tiling.out_size
    cols = max(c for _, c in tiling.origins) + tiling.out_size
    canvas = np.zeros((rows, cols, *outputs.shape[3:]), outputs.dtype)
    for tile, (r, c) in zip(outputs, tiling.origins, strict=True):
        canvas[r : r + tiling.out_size, c : c + tiling.out_size] = tile
    return canvas[: tiling.height, : tiling.width]
