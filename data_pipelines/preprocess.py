"""Per-example ops: decode one image, resize and crop as the weights expect, optionally augment.

Pure functions of (image, config, rng): no global state, so Grain can run them in threads or
worker processes and get the same pixels. Output is uint8 ``[H, W, C]`` on the host;
normalisation (mean/std) happens on the device (``data_pipelines.device.normalize``).

Decode cost dominates a CPU pipeline on these data (chest films are up to 2566x2183), so big
JPEGs are decoded at a reduced size with PIL's ``draft`` (DCT scaling by 1/2, 1/4 or 1/8,
never below the size the resize needs), and the centre crop is taken inside the resize
(``resize(box=...)``) so no pixel outside the crop is resampled.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps

from data_pipelines.integrity import BadImageError, max_image_pixels, pixel_limit_problem

ImageInput = Union[str, "os.PathLike[str]", bytes, np.ndarray]

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_GREY_MODES = ("L", "LA", "La", "1", "F", *_SIXTEEN_BIT_MODES)
_ALPHA_MODES = {"LA": "L", "La": "L", "RGBA": "RGB", "RGBa": "RGB", "PA": "RGB"}


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """How one example becomes a model input; read from the weights' metadata.

    Evaluation: resize the shorter side to ``input_size / crop_fraction``, centre-crop
    ``input_size``. Training with ``augment``: the same, then a random affine (scale,
    rotation, translation), horizontal flip, brightness and contrast: off unless asked, as in
    the paper. ``mean``/``std`` are carried for the device-side normalisation only.
    """

    input_size: int = 224
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    channels: int = 3
    channel_order: str = "RGB"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False
    hflip: bool = True
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_rotate_degrees: float = 10.0
    max_translate_fraction: float = 0.05
    brightness: float = 0.1  # additive, fraction of the 0..255 range
    contrast: float = 0.1  # multiplicative around the image mean: 1 +- contrast
    draft: bool = True  # reduced-size JPEG decoding when the target is much smaller

    def __post_init__(self) -> None:
        if self.interpolation not in RESAMPLE:
            raise ValueError(
                f"interpolation {self.interpolation!r} is not one of {tuple(RESAMPLE)}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        if not 0.0 < self.crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if self.input_size < 1:
            raise ValueError(f"input_size must be positive, got {self.input_size}")

    @property
    def resize_size(self) -> int:
        """Shorter side after resizing, before the centre crop."""
        return math.floor(self.input_size / self.crop_fraction + 0.5)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.input_size, self.input_size, self.channels)

    @classmethod
    def from_metadata(
        cls, meta: Any, channels: int | None = None, augment: bool = False, **overrides: Any
    ) -> PreprocessConfig:
        """From any object with WeightMetadata's attributes (duck-typed: no models import)."""
        return cls(
            input_size=int(meta.input_size),
            crop_fraction=float(meta.crop_fraction),
            interpolation=str(meta.interpolation),
            channels=int(channels if channels is not None else meta.in_channels),
            channel_order=str(getattr(meta, "channel_order", "RGB")),
            mean=tuple(float(m) for m in meta.mean),
            std=tuple(float(s) for s in meta.std),
            augment=augment,
            **overrides,
        )

    def replace(self, **changes: Any) -> PreprocessConfig:
        return dataclasses.replace(self, **changes)


def describe(image: ImageInput, name: str | None = None) -> str:
    """A name for error messages: the path, or what was passed."""
    if name:
        return name
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    return f"<{type(image).__name__} image>"


def decode(
    image: ImageInput,
    *,
    min_short_side: int | None = None,
    grey: bool = False,
    draft: bool = True,
    name: str | None = None,
) -> Image.Image:
    """Open and fully decode an image; JPEGs at the smallest DCT scale keeping
    ``min_short_side`` (when given and ``draft``). Raises BadImageError naming the file."""
    label = describe(image, name)
    if isinstance(image, np.ndarray):
        array = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise BadImageError(
                label,
                f"expected a uint8 [H, W] or [H, W, 3] array, got {array.dtype} {array.shape}",
            )
        return Image.fromarray(array)
    try:
        with warnings.catch_warnings():  # the limit below is ours, and lower than PIL's
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)
        too_big = pixel_limit_problem(*img.size)  # from the header: nothing decoded yet
        if too_big:
            raise BadImageError(label, too_big)
        if draft and min_short_side and img.format in ("JPEG", "MPO"):
            width, height = img.size
            scale = min_short_side / min(width, height)
            if scale < 0.5:
                mode = "L" if grey and img.mode in ("L", "RGB", "YCbCr") else img.mode
                img.draft(mode, (math.ceil(width * scale), math.ceil(height * scale)))
        img.load()
    except FileNotFoundError:
        raise BadImageError(label, "file not found") from None
    except BadImageError:
        raise
    except Image.DecompressionBombError as err:  # over PIL's own limit, raised inside open
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        count = f"{int(pixels.group(1)):,} pixels" if pixels else "its size"
        raise BadImageError(
            label, f"{count} is over the limit of {max_image_pixels():,} (a decompression bomb?)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as err:
        raise BadImageError(
            label, f"cannot decode as an image ({type(err).__name__}: {err})"
        ) from None
    return img


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """Grey (``L``) or ``RGB`` uint8 from any mode, by one documented rule per mode:

    - 16-bit grey (``I;16*``, and ``I`` as PIL reads 16-bit PNGs): value / 257, so 0..65535
      maps onto 0..255 whatever the image's own range; float (``F``): clipped to 0..255.
    - palette: its colours; alpha (``LA``, ``RGBA``, ``PA``, a palette's transparency):
      composited onto black, the background of OCT scans and X-ray films.
    - CMYK (JPEG from print workflows): PIL's CMYK -> RGB conversion.
    - ``1`` (bilevel): 0 or 255. Grey to RGB replicates the grey value in all three channels.
    """
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        colour_mode = _ALPHA_MODES[img.mode]
        rgba = np.asarray(img.convert("LA" if colour_mode == "L" else "RGBA"), np.float32)
        colour = rgba[..., :-1] * (rgba[..., -1:] / 255.0)
        colour = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(colour[..., 0] if colour_mode == "L" else colour, mode=colour_mode)
    elif img.mode in _SIXTEEN_BIT_MODES or img.mode == "F":
        array = np.asarray(img, dtype=np.float64)
        if img.mode != "F":
            array = array / 257.0  # the 16-bit range onto 8 bits
        img = Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "CMYK":
        img = img.convert("RGB")
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


@dataclasses.dataclass(frozen=True)
class CentreCrop:
    """Where the evaluation centre crop lies in one original image, and the maps both ways.

    Evaluation resizes the shorter side to ``resize_size`` and crops the centre
    ``input_size`` square, so the model sees the centred square of ``side = min(h, w) *
    input_size / resize_size`` original pixels. Boxes are ``(y0, x0, y1, x1)``, end-exclusive.
    The one description of that geometry: :func:`load_image` crops with it, occlusion maps
    lesion boxes into the model input with it, overlays map heat back onto the original.
    """

    original_hw: tuple[int, int]
    input_size: int
    resize_size: int

    @classmethod
    def of(cls, original_hw: tuple[int, int], cfg: PreprocessConfig) -> CentreCrop:
        return cls((int(original_hw[0]), int(original_hw[1])), cfg.input_size, cfg.resize_size)

    @property
    def side(self) -> float:
        """Original pixels across the crop."""
        return min(self.original_hw) * self.input_size / self.resize_size

    @property
    def top(self) -> float:
        return (self.original_hw[0] - self.side) / 2.0

    @property
    def left(self) -> float:
        return (self.original_hw[1] - self.side) / 2.0

    @property
    def pixels_per_input(self) -> float:
        """Original pixels per model-input pixel."""
        return self.side / self.input_size

    def pil_box(self) -> tuple[float, float, float, float]:
        """``(left, top, right, bottom)``: the crop as PIL's ``resize(box=...)`` takes it."""
        return (self.left, self.top, self.left + self.side, self.top + self.side)

    def to_input(self, box: Sequence[float]) -> np.ndarray:
        """An original-pixel box -> model-input pixels, clipped to the input;
        ``[-1, -1, -1, -1]`` when nothing of the box is left inside the crop."""
        y0, x0, y1, x1 = (float(v) for v in box)
        scale = 1.0 / self.pixels_per_input
        mapped = np.array(
            [
                (y0 - self.top) * scale,
                (x0 - self.left) * scale,
                (y1 - self.top) * scale,
                (x1 - self.left) * scale,
            ]
        )
        mapped = np.clip(mapped, 0.0, float(self.input_size))
        if mapped[2] <= mapped[0] or mapped[3] <= mapped[1]:
            return np.full(4, -1.0)
        return mapped

    def to_original(self, box: Sequence[float]) -> np.ndarray:
        """A model-input box -> original pixels."""
        y0, x0, y1, x1 = (float(v) for v in box)
        k = self.pixels_per_input
        return np.array(
            [self.top + y0 * k, self.left + x0 * k, self.top + y1 * k, self.left + x1 * k]
        )


def _augment(img: Image.Image, cfg: PreprocessConfig, rng: np.random.Generator) -> np.ndarray:
    """Random affine + flip + brightness/contrast, then crop ``input_size`` at the centre."""
    width, height = img.size
    short = cfg.resize_size
    scale0 = short / min(width, height)
    img = img.resize(
        (max(1, round(width * scale0)), max(1, round(height * scale0))), RESAMPLE[cfg.interpolation]
    )
    width, height = img.size
    scale = rng.uniform(*cfg.scale_range)
    angle = math.radians(rng.uniform(-cfg.max_rotate_degrees, cfg.max_rotate_degrees))
    shift = (
        rng.uniform(-cfg.max_translate_fraction, cfg.max_translate_fraction, size=2)
        * cfg.input_size
    )
    out = cfg.input_size
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    # Output pixel (x, y) samples input c_in + shift + R(angle) (p - c_out) / scale.
    cx_in, cy_in = width / 2 + shift[0], height / 2 + shift[1]
    c = cx_in - cos * out / 2 + sin * out / 2
    f = cy_in - sin * out / 2 - cos * out / 2
    resample = (
        Image.Resampling.BILINEAR if cfg.interpolation != "nearest" else Image.Resampling.NEAREST
    )
    img = img.transform((out, out), Image.Transform.AFFINE, (cos, -sin, c, sin, cos, f), resample)
    if cfg.hflip and rng.random() < 0.5:
        img = ImageOps.mirror(img)
    array = np.asarray(img, dtype=np.float32)
    gain = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    offset = rng.uniform(-cfg.brightness, cfg.brightness) * 255.0
    array = (array - array.mean()) * gain + array.mean() + offset
    return np.clip(array + 0.5, 0, 255).astype(np.uint8)


def load_image(
    image: ImageInput,
    cfg: PreprocessConfig,
    rng: np.random.Generator | None = None,
    *,
    name: str | None = None,
) -> np.ndarray:
    """Decode + resize + crop (+ augment when ``cfg.augment``): uint8 ``[S, S, C]``.

    ``image``: a path, encoded bytes, or a uint8 array. ``rng`` is required when augmenting
    (Grain's ``random_map`` passes a per-example generator, so results do not depend on
    worker count). Raises BadImageError naming the file.
    """
    img = decode(
        image, min_short_side=cfg.resize_size, grey=cfg.channels == 1, draft=cfg.draft, name=name
    )
    # A grey picture stays grey through the resize (a third of the work for RGB output) and
    # is replicated to three channels at the end: the same pixels as converting first.
    grey_source = img.mode in _GREY_MODES
    try:
        img = to_channels(img, 1 if grey_source else cfg.channels)
    except (OSError, ValueError) as err:
        raise BadImageError(
            describe(image, name), f"cannot convert mode {img.mode} ({err})"
        ) from None
    if cfg.augment:
        if rng is None:
            raise ValueError("load_image: cfg.augment is set but no rng was given")
        array = _augment(img, cfg, rng)
    else:
        box = CentreCrop.of((img.size[1], img.size[0]), cfg).pil_box()
        array = np.asarray(img.resize((cfg.input_size,) * 2, RESAMPLE[cfg.interpolation], box=box))
    if array.ndim == 2:
        array = array[:, :, None]
    if cfg.channels == 3 and array.shape[-1] == 1:
        return np.repeat(array, 3, axis=-1)
    if cfg.channels == 3 and cfg.channel_order == "BGR":
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)
