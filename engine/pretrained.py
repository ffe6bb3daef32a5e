"""A converted weight file as a ready classifier of image files (``launch.predict --pretrained``).

    model, meta = load_weights_file_model("efficientnet_lite0.in1k")
    predictions, errors = classify(model, meta, ["cat.png"], top_k=5)

The network is built abstractly and filled from the file (``engine.inference.abstract_model``:
no random initialisation to throw away); images are prepared as the file's metadata says
(``data_pipelines.preprocess``) and run through the engine's one forward
(``engine.predictor.Predictor``, normalising on the device).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from flax import nnx
from jax.sharding import Mesh

import models
from data_pipelines.device import normalize
from data_pipelines.integrity import BadImageError
from data_pipelines.preprocess import PreprocessConfig, load_image
from engine.inference import abstract_model
from engine.mesh import make_mesh
from engine.predictor import Predictor
from models.loading import load_flat_state
from models.metadata import WeightMetadata
from models.registry import load_pretrained


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image, most probable first."""

    path: str
    class_indices: tuple[int, ...]
    class_names: tuple[str, ...]
    probabilities: tuple[float, ...]


class ImageReadError(ValueError):
    """An input that is not a readable image; the message names the file."""


def load_pixels(path: Path, meta: WeightMetadata) -> np.ndarray:
    """One image file -> uint8 HWC pixels prepared as ``meta`` says (resize, centre crop).

    The same per-example ops as training and evaluation (``data_pipelines.preprocess``);
    normalisation happens on the device (``engine.predictor.Predictor``).
    """
    try:
        return load_image(Path(path), PreprocessConfig.from_metadata(meta))
    except BadImageError as e:
        raise ImageReadError(f"{path}: not a readable image ({e.problem})") from e


def prepare_image(path: Path, meta: WeightMetadata) -> np.ndarray:
    """:func:`load_pixels` normalised as the network sees it (float32 HWC; a reference for tests
    and direct model calls), by the device normaliser ``data_pipelines.device.normalize``."""
    return np.asarray(normalize(load_pixels(path, meta), meta.mean, meta.std))


def _top_k(probs: np.ndarray, k: int, names: Sequence[str], path: str) -> Prediction:
    order = np.argsort(-probs, kind="stable")[:k]
    return Prediction(
        path=path,
        class_indices=tuple(int(i) for i in order),
        class_names=tuple(names[i] if names else str(int(i)) for i in order),
        probabilities=tuple(float(probs[i]) for i in order),
    )


def classify(
    model: nnx.Module,
    meta: WeightMetadata,
    images: Sequence[Path],
    top_k: int,
    *,
    mesh: Mesh | None = None,
) -> tuple[list[Prediction], list[str]]:
    """Run ``model`` (an NNX classifier) over ``images`` through the engine's sharded forward
    (``engine.predictor.Predictor``); returns predictions and error lines."""
    paths, pixels, errors = [], [], []
    for path in images:
        try:
            pixels.append(load_pixels(Path(path), meta))
            paths.append(str(path))
        except ImageReadError as e:
            errors.append(str(e))
    if not paths:
        return [], errors
    predictor = Predictor(model, meta, mesh or make_mesh())
    probs = predictor.probabilities(np.stack(pixels))
    k = max(1, min(top_k, meta.num_classes))
    return [_top_k(p, k, meta.class_names, path) for path, p in zip(paths, probs)], errors


def load_weights_file_model(
    pretrained: str | Path, *, arch: str | None = None
) -> tuple[nnx.Module, WeightMetadata]:
    """The network of a converted weight file (or registered tag) with its own head, in eval
    mode, and its metadata. ``arch``: refuse weights for any other architecture."""
    params, meta, path = load_pretrained(pretrained)
    if arch is not None and arch != meta.arch:
        raise models.WeightFileError(
            f"{path}: weights are for architecture {meta.arch!r}, not {arch!r}"
        )
    # Built abstractly and filled from the file: no random initialisation to throw away.
    model = abstract_model(
        lambda: models.create(
            meta.arch,
            num_classes=meta.num_classes,
            in_channels=meta.in_channels,
            **meta.model_kwargs,
        )
    )
    load_flat_state(model, params, source=str(path))  # every weight, or WeightMismatchError
    model.eval()
    return model, meta
