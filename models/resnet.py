"""ResNet v1.5 (18, 34, 50, 101, 152) in Flax NNX, with torchvision's topology.

Why this file: the ResNet family of the paper's comparisons, built so torchvision and timm
ImageNet state dicts convert name-for-name (``models/convert/torch_resnet.py``).

Numerical conventions (checked by tests/models/test_resnet.py against MONAI's torch ResNet):
- v1.5: in a Bottleneck the stride sits in the 3x3 conv (``conv2``), not the first 1x1.
- Shortcut: a 1x1 conv (no bias) + BatchNorm ("type B"), only where the shape changes.
- BatchNorm epsilon 1e-5, momentum 0.9 in Flax's convention (= PyTorch ``momentum=0.1``).
- Padding is explicit and symmetric as in PyTorch: 7x7/2 stem conv pads 3, 3x3 convs pad 1,
  the 3x3/2 max pool pads 1 (with -inf, so padding never wins the max).
- Inputs float32 NHWC, RGB, ``(x / 255 - mean) / std`` with the ImageNet statistics.

Parameter paths (flat, ``/``-joined): ``stem/conv/kernel``, ``stem/bn/{scale,bias,mean,var}``,
``stage{1..4}/{block}/conv{1..3}/{conv,bn}/...``, ``stage{s}/0/downsample/{conv,bn}/...``,
``head/{kernel,bias}``. ``extras`` holds ``stem`` (after conv-BN-ReLU, stride 2, before the
max pool), ``stage1``..``stage4`` (strides 4, 8, 16, 32) and ``pre_logits`` (pooled features).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
from flax import nnx

from models.layers import ConvBN, global_avg_pool, max_pool
from models.metadata import IMAGENET_MEAN, IMAGENET_STD, WeightMetadata
from models.registry import register_model

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Flax convention; PyTorch momentum=0.1
STAGE_WIDTHS = (64, 128, 256, 512)  # bottleneck width (BasicBlock: output width) per stage
STAGE_STRIDES = (1, 2, 2, 2)

_conv_bn = functools.partial(ConvBN, epsilon=BN_EPSILON, momentum=BN_MOMENTUM)


# ----------------------------------------------------------------------------- blocks


class BasicBlock(nnx.Module):
    """Two 3x3 convs (ResNet-18/34); the first carries the stride."""

    expansion = 1

    def __init__(self, in_features: int, width: int, stride: int, *, rngs: nnx.Rngs):
        out = width * self.expansion
        self.conv1 = _conv_bn(in_features, width, 3, stride=stride, padding=1, rngs=rngs)
        self.conv2 = _conv_bn(width, out, 3, padding=1, act=None, rngs=rngs)
        self.downsample = _shortcut(in_features, out, stride, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        shortcut = x if self.downsample is None else self.downsample(x)
        return jax.nn.relu(self.conv2(self.conv1(x)) + shortcut)


class Bottleneck(nnx.Module):
    """1x1 reduce -> 3x3 (stride here: v1.5) -> 1x1 expand by 4 (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, in_features: int, width: int, stride: int, *, rngs: nnx.Rngs):
        out = width * self.expansion
        self.conv1 = _conv_bn(in_features, width, 1, rngs=rngs)
        self.conv2 = _conv_bn(width, width, 3, stride=stride, padding=1, rngs=rngs)
        self.conv3 = _conv_bn(width, out, 1, act=None, rngs=rngs)
        self.downsample = _shortcut(in_features, out, stride, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        shortcut = x if self.downsample is None else self.downsample(x)
        return jax.nn.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


def _shortcut(in_features: int, out_features: int, stride: int, *, rngs: nnx.Rngs) -> ConvBN | None:
    """torchvision's ``downsample``: 1x1 conv + BN where the shape changes, else identity."""
    if stride == 1 and in_features == out_features:
        return None
    return _conv_bn(in_features, out_features, 1, stride=stride, act=None, rngs=rngs)


# ----------------------------------------------------------------------------- model


class ResNet(nnx.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool), four stages, global average pool, linear head."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks_per_stage: tuple[int, int, int, int],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        rngs: nnx.Rngs,
    ):
        self.stem = _conv_bn(in_channels, 64, 7, stride=2, padding=3, rngs=rngs)
        features = 64
        stages = []
        for width, stride, count in zip(STAGE_WIDTHS, STAGE_STRIDES, blocks_per_stage, strict=True):
            blocks = []
            for i in range(count):
                blocks.append(block(features, width, stride if i == 0 else 1, rngs=rngs))
                features = width * block.expansion
            stages.append(nnx.List(blocks))
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        self.num_features = features
        self.head = nnx.Linear(features, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        extras = {}
        x = self.stem(x)
        extras["stem"] = x
        x = max_pool(x, 3, 2, padding=1)
        for name in ("stage1", "stage2", "stage3", "stage4"):
            for block in getattr(self, name):
                x = block(x)
            extras[name] = x
        pooled = global_avg_pool(x)
        extras["pre_logits"] = pooled
        return self.head(pooled), extras


# ----------------------------------------------------------------------------- variants

VARIANTS: dict[str, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}


def build(arch: str, *, num_classes: int, in_channels: int, rngs: nnx.Rngs, **kwargs) -> ResNet:
    """Registry builder for ``arch`` (one of :data:`VARIANTS`); no extra options are known."""
    if kwargs:
        raise TypeError(f"{arch} takes no model options, got {sorted(kwargs)}")
    block, counts = VARIANTS[arch]
    return ResNet(block, counts, num_classes=num_classes, in_channels=in_channels, rngs=rngs)


# ----------------------------------------------------------------------------- weight sets


@dataclasses.dataclass(frozen=True)
class WeightSet:
    """One upstream source's ImageNet-1k weights for this family, and how they were evaluated."""

    tags: dict[str, str]  # arch -> the upstream tag of its default weights
    interpolation: str
    crop_fraction: float
    source: str  # formatted with {arch} and {tag}
    license: str


# torchvision IMAGENET1K_V1: resize 256 -> crop 224 (0.875), bilinear, BSD-3-Clause.
# (Its IMAGENET1K_V2 sets evaluate at resize 232 -> crop 224: convert them with
# ``launch.convert --crop_fraction 0.9655``.)
# timm's default tags (``resnet{18,34,50}.a1_in1k``, ``resnet{101,152}.a1h_in1k``, the "ResNet
# strikes back" recipe) use timm's ``_rcfg``: bicubic, crop_pct 0.95 at 224 (timm also lists
# a test size of 288 at crop 1.0), Apache-2.0. Read from timm's resnet.py ``default_cfgs``.
WEIGHT_SETS: dict[str, WeightSet] = {
    "torchvision": WeightSet(
        tags={arch: "tv_in1k" for arch in VARIANTS},
        interpolation="bilinear",
        crop_fraction=0.875,
        source="torchvision.models.{arch} IMAGENET1K_V1 (https://download.pytorch.org/models/)",
        license="BSD-3-Clause",
    ),
    "timm": WeightSet(
        tags={
            "resnet18": "a1_in1k",
            "resnet34": "a1_in1k",
            "resnet50": "a1_in1k",
            "resnet101": "a1h_in1k",
            "resnet152": "a1h_in1k",
        },
        interpolation="bicubic",
        crop_fraction=0.95,
        source="timm {arch}.{tag} (https://huggingface.co/timm)",
        license="Apache-2.0",
    ),
}


def weight_metadata(arch: str, source: str, class_names: tuple[str, ...] = ()) -> WeightMetadata:
    """Metadata of ``source``'s ImageNet weights for ``arch`` (see :data:`WEIGHT_SETS`)."""
    if arch not in VARIANTS:
        raise ValueError(f"unknown ResNet {arch!r}; known: {', '.join(VARIANTS)}")
    if source not in WEIGHT_SETS:
        raise ValueError(f"no ResNet weight set from {source!r}; known: {', '.join(WEIGHT_SETS)}")
    weights = WEIGHT_SETS[source]
    tag = weights.tags[arch]
    return WeightMetadata(
        arch=arch,
        tag=f"{arch}.{tag}",
        num_classes=1000,
        input_size=224,
        crop_fraction=weights.crop_fraction,
        interpolation=weights.interpolation,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classifier_paths=("head",),
        first_conv_path="stem/conv",
        source=weights.source.format(arch=arch, tag=tag),
        license=weights.license,
        class_names=class_names,
    )


# ----------------------------------------------------------------------------- registration

for _arch in VARIANTS:
    register_model(
        _arch,
        functools.partial(build, _arch),
        WeightMetadata(
            arch=_arch,
            input_size=224,
            crop_fraction=0.875,
            interpolation="bilinear",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            classifier_paths=("head",),
            first_conv_path="stem/conv",
            source="random initialisation; ImageNet weights via "
            "`python -m launch.convert --source=torchvision|timm`",
            license="Apache-2.0",
        ),
    )
