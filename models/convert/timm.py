"""timm state dicts (``.pth`` read with ``weights_only=True``, or ``.safetensors``).

Name maps live per family (``torch_resnet``, ``torch_inception_v3``); this module routes by
architecture and sets the timm preprocessing defaults.
"""

from __future__ import annotations

import importlib

from models.convert.readers import read_state_dict as read  # noqa: F401  (source API)

SOURCE = "timm"
_FAMILIES = {
    **{f"resnet{d}": "torch_resnet" for d in (18, 34, 50, 101, 152)},
    "inception_v3": "torch_inception_v3",
}
ARCHS = frozenset(_FAMILIES)


def _family(arch: str):
    return importlib.import_module(f"models.convert.{_FAMILIES[arch]}")


def convert(flat, arch: str):
    return _family(arch).convert(flat, arch, source=SOURCE)


def metadata(arch: str):
    return _family(arch).metadata(arch, source=SOURCE)
