"""Converters from other frameworks' weight files to the project's weight file.

Each source module (``models/convert/<source>.py``) is a pure mapping: it exposes
``ARCHS`` (the architectures it knows), ``read(path) -> flat dict`` (safe reading),
``convert(flat, arch) -> flat Flax dict`` (name map + tensor transforms) and
``metadata(arch) -> WeightMetadata``. :func:`convert_file` composes them and proves the
result fits the Flax model before anything is written.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from models.loading import WeightMismatchError, load_flat_state
from models.metadata import WeightMetadata
from models.registry import create
from models.weights_file import WeightFileError

SOURCES = ("keras", "torchvision", "timm", "efficientnet_lite")


def source_module(source: str):
    if source not in SOURCES:
        raise ValueError(f"unknown --source {source!r}; known: {', '.join(SOURCES)}")
    return importlib.import_module(f"models.convert.{source}")


def convert_file(
    source: str, arch: str, weights: str | Path
) -> tuple[dict[str, np.ndarray], WeightMetadata]:
    """Read ``weights`` (a ``source``-format file for ``arch``) and return Flax params + metadata.

    Raises WeightFileError naming the file when it cannot be read or does not hold ``arch``.
    """
    mod = source_module(source)
    if arch not in mod.ARCHS:
        raise ValueError(f"--source={source} converts {', '.join(sorted(mod.ARCHS))}; not {arch!r}")
    raw = mod.read(Path(weights))
    try:
        params = mod.convert(raw, arch)
    except KeyError as e:
        raise WeightFileError(
            f"{weights}: missing tensors ({e.args[0] if e.args else e}) expected for {arch} from "
            f"{source}: the file is for "
            "another architecture or another source layout"
        ) from e
    except ValueError as e:  # e.g. tensors the architecture does not have, a bad shape
        raise WeightFileError(f"{weights}: cannot convert to {arch} from {source}: {e}") from e
    meta = mod.metadata(arch)
    # Prove the params fit the Flax model exactly before anyone writes them to disk.
    model = create(
        arch, num_classes=meta.num_classes, in_channels=meta.in_channels, **meta.model_kwargs
    )
    try:
        load_flat_state(model, params, source=str(weights))
    except WeightMismatchError as e:
        raise WeightFileError(f"{weights}: converted weights do not fit {arch}: {e}") from e
    return params, meta
