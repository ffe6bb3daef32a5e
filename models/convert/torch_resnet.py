"""torchvision / timm ResNet state dicts -> flat Flax parameters of ``models.resnet``.

Pure functions on flat dicts: :func:`name_map` lists, for one architecture, every torch
tensor name with the Flax path and the tensor transform it needs; :func:`convert` applies
it. timm's ResNet names equal torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``/``.1``, ``fc``), so both sources share the table.

A tensor the table expects but the file lacks raises ``KeyError`` (``models.convert.
convert_file`` turns it into a WeightFileError naming the file); tensors the table does not
use (other than BatchNorm's ``num_batches_tracked`` counters) raise ``ValueError``, so a
ResNet-34 file is not quietly read as a ResNet-18 whose tensors it happens to contain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from models import resnet
from models.convert.name_table import apply_table, entries
from models.convert.transforms import identity, linear_transpose, oihw_to_hwio
from models.imagenet_classes import imagenet_class_names
from models.metadata import WeightMetadata

Transform = Callable[[np.ndarray], np.ndarray]

# torch BatchNorm2d tensor -> Flax nnx.BatchNorm variable (same layout, see transforms.identity)
_BN_NAMES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def _conv_bn(torch_conv: str, torch_bn: str, flax_prefix: str) -> dict[str, tuple[str, Transform]]:
    table = {f"{torch_conv}.weight": (f"{flax_prefix}/conv/kernel", oihw_to_hwio)}
    for torch_name, flax_name in _BN_NAMES.items():
        table[f"{torch_bn}.{torch_name}"] = (f"{flax_prefix}/bn/{flax_name}", identity)
    return table


def name_map(arch: str) -> dict[str, tuple[str, Transform]]:
    """``{torch name: (flax path, transform)}`` for every tensor of ``arch``."""
    if arch not in resnet.VARIANTS:
        raise ValueError(f"unknown ResNet {arch!r}; known: {', '.join(resnet.VARIANTS)}")
    block, counts = resnet.VARIANTS[arch]
    convs_per_block = 3 if block is resnet.Bottleneck else 2
    table = _conv_bn("conv1", "bn1", "stem")
    features = 64
    for s, (width, stride, count) in enumerate(
        zip(resnet.STAGE_WIDTHS, resnet.STAGE_STRIDES, counts, strict=True), start=1
    ):
        for b in range(count):
            torch_block, flax_block = f"layer{s}.{b}", f"stage{s}/{b}"
            for c in range(1, convs_per_block + 1):
                table.update(
                    _conv_bn(
                        f"{torch_block}.conv{c}", f"{torch_block}.bn{c}", f"{flax_block}/conv{c}"
                    )
                )
            out = width * block.expansion
            if b == 0 and (stride != 1 or features != out):
                table.update(
                    _conv_bn(
                        f"{torch_block}.downsample.0",
                        f"{torch_block}.downsample.1",
                        f"{flax_block}/downsample",
                    )
                )
            features = out
    table["fc.weight"] = ("head/kernel", linear_transpose)
    table["fc.bias"] = ("head/bias", identity)
    return table


def convert(
    flat: Mapping[str, np.ndarray], arch: str, source: str = "torchvision"
) -> dict[str, np.ndarray]:
    """Flat torch state dict of ``arch`` -> flat Flax params (KeyError on a missing tensor)."""
    del source  # torchvision and timm share the names
    return apply_table(
        flat, entries(name_map(arch)), arch, ignored=lambda k: k.endswith(_IGNORED_SUFFIXES)
    )


def metadata(arch: str, source: str = "torchvision") -> WeightMetadata:
    """Preprocessing and provenance of ``source``'s ImageNet weights (models.resnet.WEIGHT_SETS)."""
    return resnet.weight_metadata(arch, source, class_names=imagenet_class_names())
