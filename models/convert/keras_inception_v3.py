"""Keras ``InceptionV3`` ``.h5`` weights -> flat Flax parameters of ``models.inception_v3``.

Why this file: the paper's network is TensorFlow's Inception-V3, whose ImageNet weights are
published as ``keras.applications``' HDF5 file. Two layouts are read, both through h5py (no
code in the file is ever run):

- the legacy HDF5 layout (``keras.src.legacy.saving.legacy_h5_format.
  save_weights_to_hdf5_group``; the published ``inception_v3_weights_tf_dim_ordering_tf_
  kernels.h5``): a root attribute ``layer_names`` lists every layer in Keras' layer order; each
  layer group lists its tensors in ``weight_names`` (``conv2d_12/kernel:0``, ...). A file
  written by ``model.save()`` keeps the same under ``model_weights/``.
- the Keras 3 ``.weights.h5`` layout (``model.save_weights``): ``layers/<name>/vars/<i>``,
  where ``<name>`` is the layer's class in snake case numbered by its position in Keras' layer
  order among layers of that class (``conv2d``, ``conv2d_1``, ...), not the layer's own name.

Keras itself matches both layouts to a model by that layer order, never by layer name, so
:func:`read` turns either into the same flat dict keyed ``"<class>/<i>/<tensor>"``
(``conv2d/7/kernel``, ``batch_normalization/7/moving_mean``, ``dense/0/bias``), ``i`` being
the position in Keras' order. :func:`convert` is then a pure name map plus tensor transforms.

Keras' layer order for a functional model is "by depth from the output, deepest first; ties in
the order the layers were created" (``keras.src.ops.function.map_graph``); within one Inception
block that depends only on the block's branch graph (``BRANCHES`` of each block class), which
:func:`keras_conv_order` replays. Each convolution is followed by its own BatchNorm, so the
i-th ``batch_normalization`` belongs to the i-th ``conv2d``.

Tensor conventions: Keras conv kernels are HWIO and Dense kernels (in, out), as in Flax
(``identity``); ``BatchNormalization(scale=False)`` stores beta, moving mean and moving
variance but no gamma, so the Flax scale is set to 1 (``ones_like``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from models import inception_v3
from models.convert.name_table import apply_table
from models.convert.transforms import identity, ones_like
from models.imagenet_classes import imagenet_class_names
from models.metadata import WeightMetadata
from models.weights_file import WeightFileError, check_file

Transform = Callable[[np.ndarray], np.ndarray]

ARCHS = frozenset({"inception_v3"})
SOURCE = "keras"

# Keras 3 ``.weights.h5`` stores a layer's variables by position; their names, by layer class
# and count (BatchNormalization drops gamma with scale=False and beta with center=False).
_KERAS3_VAR_NAMES: dict[str, dict[int, tuple[str, ...]]] = {
    "conv2d": {1: ("kernel",), 2: ("kernel", "bias")},
    "dense": {1: ("kernel",), 2: ("kernel", "bias")},
    "batch_normalization": {
        4: ("gamma", "beta", "moving_mean", "moving_variance"),
        3: ("beta", "moving_mean", "moving_variance"),
        2: ("moving_mean", "moving_variance"),
    },
}
_NUMBERED = re.compile(r"(?P<kind>.*?)(?:_(?P<index>\d+))?")


# ----------------------------------------------------------------------------- reading


def read(path: str | Path) -> dict[str, np.ndarray]:
    """Either HDF5 layout -> ``{"conv2d/0/kernel": array, ...}`` in Keras' layer order."""
    path = Path(path)
    check_file(path)
    try:
        import h5py  # optional (the 'weights' extra): only Keras .h5 files need it
    except ImportError as e:
        raise WeightFileError(
            f"{path}: reading Keras .h5 files needs h5py; install the 'weights' extra"
        ) from e
    try:
        with h5py.File(path, "r") as h5:
            root = h5.get("model_weights", h5)
            if "layer_names" in root.attrs:
                flat = _read_legacy(root)
            elif "layers" in root:
                flat = _read_keras3(root["layers"])
            else:
                raise WeightFileError(
                    f"{path}: an HDF5 file but not Keras weights (neither a 'layer_names' "
                    "attribute nor a 'layers' group)"
                )
    except WeightFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:  # RuntimeError: HDF5
        raise WeightFileError(
            f"{path}: not a readable Keras HDF5 weight file; it may be truncated or not HDF5 "
            f"({type(e).__name__}: {e})"
        ) from e
    if not flat:
        raise WeightFileError(f"{path}: the Keras weight file holds no tensors")
    return flat


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_legacy(root) -> dict[str, np.ndarray]:
    """``layer_names`` order; each weighted layer classified by the tensors it holds."""
    flat: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for layer_name in map(_text, root.attrs["layer_names"]):
        group = root[layer_name]
        weight_names = [_text(n) for n in group.attrs.get("weight_names", [])]
        if not weight_names:
            continue
        # "conv2d_3/kernel:0" or "predictions/predictions_1/kernel:0" -> "kernel"
        tensors = {n.split("/")[-1].split(":")[0]: np.asarray(group[n]) for n in weight_names}
        kind = _legacy_kind(layer_name, tensors)
        index = counts.get(kind, 0)
        counts[kind] = index + 1
        for name, value in tensors.items():
            flat[f"{kind}/{index}/{name}"] = value
    return flat


def _legacy_kind(layer_name: str, tensors: Mapping[str, np.ndarray]) -> str:
    """The Keras 3 snake-case class name of a legacy layer, from its tensors."""
    if "moving_mean" in tensors:
        return "batch_normalization"
    kernel = tensors.get("kernel")
    if kernel is not None and kernel.ndim == 4:
        return "conv2d"
    if kernel is not None and kernel.ndim == 2:
        return "dense"
    return f"unknown layer {layer_name!r}"


def _read_keras3(layers) -> dict[str, np.ndarray]:
    """``layers/<class>_<i>/vars/<j>`` -> ``<class>/<i>/<tensor name>``."""
    flat: dict[str, np.ndarray] = {}
    for layer_name, group in layers.items():
        variables = group.get("vars")
        if variables is None or len(variables) == 0:
            continue
        match = _NUMBERED.fullmatch(layer_name)
        kind, index = match["kind"], int(match["index"] or 0)
        values = [np.asarray(variables[str(j)]) for j in range(len(variables))]
        names = _KERAS3_VAR_NAMES.get(kind, {}).get(
            len(values), tuple(map(str, range(len(values))))
        )
        for name, value in zip(names, values, strict=True):
            flat[f"{kind}/{index}/{name}"] = value
    return flat


# ----------------------------------------------------------------------------- name map


def keras_conv_order() -> list[str]:
    """Flax paths of every ConvBN, in the order Keras lists InceptionV3's Conv2D layers.

    The stem is a chain. Inside a block Keras sorts by depth (the longest path to the block's
    output, in layers: each conv-BN-ReLU counts 3, a concatenation 1), deepest first, ties in
    creation order (branch by branch, as written in ``BRANCHES``).
    """
    order = [f"stem/{name}" for name in inception_v3.STEM_CONVS]
    for stage, blocks in inception_v3.STAGE_BLOCKS.items():
        for i, (_, block) in enumerate(blocks):
            ranked = []
            for branch in block.BRANCHES:
                for step, parallel in enumerate(branch):
                    depth = sum(3 + (len(later) > 1) for later in branch[step:])
                    for name in parallel:
                        ranked.append((-depth, len(ranked), f"{stage}/{i}/{name}"))
            order.extend(path for *_, path in sorted(ranked))
    return order


def name_map(arch: str) -> dict[str, tuple[str, Transform]]:
    """``{flax path: (keras key, transform)}`` for every Flax tensor of ``arch``."""
    if arch not in ARCHS:
        raise ValueError(f"Keras weights convert to {sorted(ARCHS)}, not {arch!r}")
    table: dict[str, tuple[str, Transform]] = {}
    for i, path in enumerate(keras_conv_order()):
        bn = f"batch_normalization/{i}"
        table[f"{path}/conv/kernel"] = (f"conv2d/{i}/kernel", identity)
        table[f"{path}/bn/scale"] = (f"{bn}/beta", ones_like)  # scale=False: gamma is 1
        table[f"{path}/bn/bias"] = (f"{bn}/beta", identity)
        table[f"{path}/bn/mean"] = (f"{bn}/moving_mean", identity)
        table[f"{path}/bn/var"] = (f"{bn}/moving_variance", identity)
    table["head/kernel"] = ("dense/0/kernel", identity)
    table["head/bias"] = ("dense/0/bias", identity)
    return table


def convert(flat: Mapping[str, np.ndarray], arch: str) -> dict[str, np.ndarray]:
    """Flat Keras tensors (from :func:`read`) -> flat Flax params.

    KeyError on a tensor the table expects but ``flat`` lacks; ValueError on tensors the
    table does not use (a gamma, conv biases, extra layers: another architecture) and on a
    file without the classifier (``include_top=False``).
    """
    table = name_map(arch)
    try:
        rows = ((key, flax_path, t) for flax_path, (key, t) in table.items())
        return apply_table(flat, rows, arch)
    except KeyError:
        if "dense/0/kernel" not in flat and "conv2d/93/kernel" in flat:
            raise ValueError(
                "no classifier (Dense 'predictions' layer): "
                "an include_top=False ('notop') file; "
                "convert the full ImageNet file "
                "(inception_v3_weights_tf_dim_ordering_tf_kernels.h5)"
            ) from None
        raise


def metadata(arch: str) -> WeightMetadata:
    """Preprocessing and provenance of keras.applications' ImageNet Inception-V3 weights."""
    if arch not in ARCHS:
        raise ValueError(f"Keras weights convert to {sorted(ARCHS)}, not {arch!r}")
    return inception_v3.weight_metadata(SOURCE, class_names=imagenet_class_names())
