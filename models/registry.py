"""Model registry: ``create(name, pretrained=..., num_classes=..., in_channels=...)``.

Restore order for weights: a file written by ``launch.convert`` or a registered tag (which
resolves to such a file, converting and caching it if needed) -> random initialisation.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from flax import nnx

from models import weights_file
from models.loading import load_flat_state
from models.metadata import WeightMetadata

log = logging.getLogger(__name__)

Builder = Callable[..., nnx.Module]  # builder(*, num_classes, in_channels, rngs, **kwargs)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Builder
    default_metadata: WeightMetadata


_MODELS: dict[str, ModelEntry] = {}
_PRETRAINED: dict[str, Callable[[], Path]] = {}


def register_model(name: str, builder: Builder, default_metadata: WeightMetadata) -> None:
    if name in _MODELS:
        raise ValueError(f"model {name!r} registered twice")
    if default_metadata.arch != name:
        raise ValueError(f"metadata arch {default_metadata.arch!r} != model name {name!r}")
    _MODELS[name] = ModelEntry(name, builder, default_metadata)


def register_pretrained(tag: str, resolve: Callable[[], Path]) -> None:
    """``resolve()`` returns the path of a converted weight file for ``tag`` (``arch.source``)."""
    if tag in _PRETRAINED:
        raise ValueError(f"pretrained tag {tag!r} registered twice")
    _PRETRAINED[tag] = resolve


def list_models() -> list[str]:
    return sorted(_MODELS)


def list_pretrained() -> list[str]:
    return sorted(_PRETRAINED)


def get_entry(name: str) -> ModelEntry:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def weights_cache_dir() -> Path:
    """Where registered tags keep converted files (``$KERMANY_JAX_CACHE`` or ~/.cache)."""
    root = os.environ.get("KERMANY_JAX_CACHE") or Path.home() / ".cache" / "kermany-jax"
    return Path(root) / "weights"


def resolve_pretrained(pretrained: str | os.PathLike) -> Path:
    """A registered tag -> its converted file; anything else must be an existing file."""
    if isinstance(pretrained, str) and pretrained in _PRETRAINED:
        return Path(_PRETRAINED[pretrained]())
    path = Path(pretrained)
    if not path.exists():
        raise FileNotFoundError(
            f"--pretrained {pretrained!r} is neither a file nor a registered tag "
            f"(tags: {', '.join(list_pretrained()) or 'none'})"
        )
    return path


def load_pretrained(
    pretrained: str | os.PathLike,
) -> tuple[dict[str, np.ndarray], WeightMetadata, Path]:
    path = resolve_pretrained(pretrained)
    params, meta = weights_file.load(path)
    return params, meta, path


def metadata_for(
    name: str,
    pretrained: str | os.PathLike | None = None,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
) -> WeightMetadata:
    """The preprocessing/metadata a model created with the same arguments expects."""
    meta = get_entry(name).default_metadata
    if pretrained is not None:
        _, meta, _ = load_pretrained(pretrained)
    changes = {}
    if num_classes is not None and num_classes != meta.num_classes:
        changes.update(num_classes=num_classes, class_names=())
    if in_channels is not None and in_channels != meta.in_channels:
        changes.update(
            in_channels=in_channels,
            mean=meta.mean[:1] * in_channels,
            std=meta.std[:1] * in_channels,
        )
        if in_channels == 1:  # grey level of the pretrained RGB statistics, see adapt_first_conv
            changes.update(mean=(float(np.mean(meta.mean)),), std=(float(np.mean(meta.std)),))
    return meta.replace(**changes) if changes else meta


def adapt_first_conv(
    kernel: np.ndarray, in_channels: int, std: tuple[float, ...] | None = None
) -> np.ndarray:
    """Adapt a pretrained HWIO first-conv kernel from 3 to ``in_channels`` input channels.

    ``in_channels=1``: sum over the RGB axis, each channel first scaled by ``mean(std) /
    std_c``. A grey image g fed as (g, g, g) and normalised per channel gives
    ``sum_c w_c (g - m_c) / s_c``; the adapted kernel on g normalised with the grey statistics
    (mean of the means, mean of the stds; see :func:`metadata_for`) gives the same slope in g.
    When the channel means are equal too (Inception, EfficientNet-Lite: 0.5 / 127) the two
    networks agree exactly; with ImageNet's unequal means a constant offset per output
    channel remains (``sum_c w_c (mean(m) - m_c) / s_c``), which fine-tuning absorbs.
    Other counts repeat the RGB kernel cyclically and rescale by 3 / in_channels (timm's rule).
    """
    if kernel.shape[2] == in_channels:
        return kernel
    if in_channels == 1:
        if std is not None and len(std) == kernel.shape[2]:
            s = np.asarray(std, kernel.dtype)
            kernel = kernel * (s.mean() / s)[None, None, :, None]
        return kernel.sum(axis=2, keepdims=True)
    reps = -(-in_channels // kernel.shape[2])
    return np.tile(kernel, (1, 1, reps, 1))[:, :, :in_channels] * (kernel.shape[2] / in_channels)


def create(
    name: str,
    *,
    num_classes: int | None = None,
    pretrained: str | os.PathLike | None = None,
    in_channels: int = 3,
    rngs: nnx.Rngs | None = None,
    **kwargs,
) -> nnx.Module:
    """Build model ``name``; optionally load pretrained weights (see module docstring).

    A ``num_classes`` different from the weights' replaces the classifier with a freshly
    initialised one (logged); ``in_channels`` different from 3 adapts the first convolution
    (:func:`adapt_first_conv`). Inputs are float32 NHWC, normalised as
    :func:`metadata_for` says.
    """
    entry = get_entry(name)
    rngs = rngs if rngs is not None else nnx.Rngs(0)
    if pretrained is None:
        n = num_classes if num_classes is not None else entry.default_metadata.num_classes
        return entry.builder(num_classes=n, in_channels=in_channels, rngs=rngs, **kwargs)

    params, meta, path = load_pretrained(pretrained)
    if meta.arch != name:
        raise weights_file.WeightFileError(
            f"{path}: weights are for architecture {meta.arch!r}, not {name!r}"
        )
    n = num_classes if num_classes is not None else meta.num_classes
    model = entry.builder(
        num_classes=n, in_channels=in_channels, rngs=rngs, **{**meta.model_kwargs, **kwargs}
    )
    skip: list[str] = []
    if n != meta.num_classes:
        log.warning(
            "%s: %d classes in the weights, %d asked: classifier %s re-initialised",
            path,
            meta.num_classes,
            n,
            ", ".join(meta.classifier_paths),
        )
        skip.extend(meta.classifier_paths)
    if in_channels != meta.in_channels:
        key = meta.first_conv_path.rstrip("/") + "/kernel"
        params = dict(params)
        params[key] = adapt_first_conv(params[key], in_channels, std=meta.std)
        log.info(
            "%s: first convolution %r adapted from %d to %d input channels",
            path,
            meta.first_conv_path,
            meta.in_channels,
            in_channels,
        )
    load_flat_state(model, params, source=str(path), skip=skip)
    return model
