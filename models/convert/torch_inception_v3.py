"""torchvision / timm Inception-V3 state dicts -> flat Flax parameters of ``models.inception_v3``.

Why this file: torchvision's ``inception_v3`` IMAGENET1K_V1 weights (and timm's copy of them,
``inception_v3.tv_in1k``, plus timm's TF-slim and Gluon ports) are the ImageNet Inception-V3
weights most people have on disk. Both libraries use the same tensor names:
``Conv2d_1a_3x3.conv.weight``, ``Conv2d_1a_3x3.bn.{weight,bias,running_mean,running_var}``,
``Mixed_5b.branch1x1.conv.weight``, ..., ``AuxLogits.conv0``/``conv1``/``fc``, ``fc``.
Our block attributes carry torchvision's names, so the table is a prefix map: the stem's
``Conv2d_1a_3x3`` -> ``stem/conv_1a``, ``Mixed_5b`` -> ``stage1/0`` (``models.inception_v3.
STAGE_BLOCKS``), ``AuxLogits`` -> ``aux_head``, ``fc`` -> ``head``.

The auxiliary head: torchvision's file always holds it and it is kept (the metadata then
builds the model with ``aux_logits=True``); timm's files hold it for ``tv_in1k`` only and timm
drops it by default, and so does ``--source=timm`` here. A torchvision-layout file saved
without ``AuxLogits`` therefore converts with ``--source=timm``.

Tensor conventions: conv ``(out, in, kh, kw)`` -> HWIO (``oihw_to_hwio``), Linear ``(out, in)``
-> ``(in, out)`` (``linear_transpose``), BatchNorm tensors as they are (``identity``);
``num_batches_tracked`` counters are ignored. A tensor the table expects but the file lacks
raises KeyError; a tensor the table does not use raises ValueError (another architecture).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from models import inception_v3
from models.convert.name_table import apply_table, entries
from models.convert.transforms import identity, linear_transpose, oihw_to_hwio
from models.imagenet_classes import imagenet_class_names
from models.metadata import WeightMetadata

Transform = Callable[[np.ndarray], np.ndarray]

ARCHS = frozenset({"inception_v3"})
SOURCES = ("torchvision", "timm")

_STEM = {
    "Conv2d_1a_3x3": "conv_1a",
    "Conv2d_2a_3x3": "conv_2a",
    "Conv2d_2b_3x3": "conv_2b",
    "Conv2d_3b_1x1": "conv_3b",
    "Conv2d_4a_3x3": "conv_4a",
}
# torch BatchNorm2d tensor -> Flax nnx.BatchNorm variable (same layout)
_BN_NAMES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_IGNORED_SUFFIXES = (".num_batches_tracked",)
_AUX_PREFIX = "AuxLogits."


def _check(arch: str, source: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"this converter knows {sorted(ARCHS)}, not {arch!r}")
    if source not in SOURCES:
        raise ValueError(f"unknown Inception-V3 source {source!r}; known: {', '.join(SOURCES)}")


def _basic_conv(torch_prefix: str, flax_prefix: str) -> dict[str, tuple[str, Transform]]:
    """torchvision ``BasicConv2d`` (``.conv`` + ``.bn``) -> our ``ConvBN`` (``conv`` + ``bn``)."""
    table = {f"{torch_prefix}.conv.weight": (f"{flax_prefix}/conv/kernel", oihw_to_hwio)}
    for torch_name, flax_name in _BN_NAMES.items():
        table[f"{torch_prefix}.bn.{torch_name}"] = (f"{flax_prefix}/bn/{flax_name}", identity)
    return table


def name_map(arch: str, source: str = "torchvision") -> dict[str, tuple[str, Transform]]:
    """``{torch name: (flax path, transform)}`` for every tensor ``source``'s file must hold."""
    _check(arch, source)
    table: dict[str, tuple[str, Transform]] = {}
    for torch_name, flax_name in _STEM.items():
        table.update(_basic_conv(torch_name, f"stem/{flax_name}"))
    for stage, blocks in inception_v3.STAGE_BLOCKS.items():
        for i, (slim_name, block) in enumerate(blocks):
            torch_block = "M" + slim_name[1:]  # mixed_5b -> Mixed_5b
            for branch in block.BRANCHES:
                for parallel in branch:
                    for conv in parallel:
                        table.update(_basic_conv(f"{torch_block}.{conv}", f"{stage}/{i}/{conv}"))
    if inception_v3.WEIGHT_SETS[source].aux_logits:
        table.update(_basic_conv("AuxLogits.conv0", "aux_head/conv0"))
        table.update(_basic_conv("AuxLogits.conv1", "aux_head/conv1"))
        table["AuxLogits.fc.weight"] = (
            f"{inception_v3.AUX_CLASSIFIER_PATH}/kernel",
            linear_transpose,
        )
        table["AuxLogits.fc.bias"] = (f"{inception_v3.AUX_CLASSIFIER_PATH}/bias", identity)
    table["fc.weight"] = ("head/kernel", linear_transpose)
    table["fc.bias"] = ("head/bias", identity)
    return table


def convert(
    flat: Mapping[str, np.ndarray], arch: str, source: str = "torchvision"
) -> dict[str, np.ndarray]:
    """Flat torch state dict -> flat Flax params (see the module docstring for the rules)."""
    table = name_map(arch, source)
    dropped = () if any(k.startswith(_AUX_PREFIX) for k in table) else (_AUX_PREFIX,)
    return apply_table(
        flat,
        entries(table),
        arch,
        ignored=lambda k: k.endswith(_IGNORED_SUFFIXES) or k.startswith(dropped),
    )


def metadata(arch: str, source: str = "torchvision") -> WeightMetadata:
    """Preprocessing and provenance of ``source``'s weights (``inception_v3.WEIGHT_SETS``)."""
    _check(arch, source)
    return inception_v3.weight_metadata(source, class_names=imagenet_class_names())
