"""torchvision state dicts (``.pth`` read with ``weights_only=True``, or ``.safetensors``).

Name maps live per family (``torch_resnet``, ``torch_inception_v3``); this module routes by
architecture, and the family sets the source's preprocessing defaults. ``timm`` shares the
routing (its ResNet and Inception-V3 tensor names equal torchvision's).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from models.convert.readers import read_state_dict as read  # noqa: F401  (source API)

SOURCE = "torchvision"
_FAMILIES = {
    **{f"resnet{d}": "torch_resnet" for d in (18, 34, 50, 101, 152)},
    "inception_v3": "torch_inception_v3",
}
ARCHS = frozenset(_FAMILIES)


def _family(arch: str):
    return importlib.import_module(f"models.convert.{_FAMILIES[arch]}")


def routed(source: str) -> tuple[Callable, Callable]:
    """``convert(flat, arch)`` and ``metadata(arch)`` for a torch-layout ``source``."""

    def convert(flat, arch: str):
        return _family(arch).convert(flat, arch, source=source)

    def metadata(arch: str):
        return _family(arch).metadata(arch, source=source)

    return convert, metadata


convert, metadata = routed(SOURCE)
