"""Inception-V3 in Flax NNX: the network of Kermany et al., with the ImageNet topology.

Why this file: the paper transfer-learned an ImageNet Inception-V3 (TensorFlow's). The
topology here is the one shared by TF-slim, ``keras.applications.InceptionV3`` and
torchvision's ``Inception3`` (Szegedy et al. 2016): a five-convolution stem, three 35x35
``InceptionA`` blocks, a grid reduction (``InceptionB``), four 17x17 ``InceptionC`` blocks, a
second reduction (``InceptionD``), two 8x8 ``InceptionE`` blocks, global average pooling and
a linear classifier; optionally torchvision's auxiliary classifier on the 17x17 features.
Keras ``.h5`` and torchvision/timm state dicts convert into it
(``models/convert/keras_inception_v3.py``, ``models/convert/torch_inception_v3.py``).

Numerical conventions (checked by ``tests/models/test_inception_v3.py`` against Keras 3 and
a torch model with torchvision's names and forward pass):
- Every convolution is conv (no bias) -> BatchNorm (epsilon 1e-3) -> ReLU. Keras builds its
  BatchNorm with ``scale=False`` (no gamma); its converter sets the Flax ``scale`` to 1.
  Momentum 0.9 in Flax's convention (= PyTorch ``momentum=0.1``); it matters only in training.
- Padding: the stride-2 convolutions and the 3x3 convolutions of the stem that shrink the map
  are ``VALID``; all others are stride 1 with odd kernels, padded ``k // 2`` on each side
  (Keras' ``"same"`` at stride 1 is exactly that, and torchvision writes those pads out).
  Max pools are 3x3/2 ``VALID``.
- The 3x3/1 average pool of the ``branch_pool`` branches pads 1 on each side. Keras/TF
  ``"same"`` pooling divides by the number of real pixels under the window; torchvision's
  ``F.avg_pool2d(padding=1)`` divides by 9 everywhere. ``avg_pool_count_include_pad`` picks
  the rule (False = Keras/TF, the default; True = torchvision/timm); each weight set's
  metadata sets it through ``model_kwargs``.
- Inputs are float32 NHWC RGB scaled to [-1, 1] (mean = std = 0.5 on [0, 1] pixels).
  torchvision's ``transform_input=True`` is this same renormalisation, so it is expressed in
  the weight metadata, not in code.
- Input size 299 by default; anything from 75x75 up works (smaller inputs are refused).

Parameter paths (flat, ``/``-joined): ``stem/conv_{1a,2a,2b,3b,4a}/{conv,bn}/...``,
``stage1/{0..2}`` (torchvision ``Mixed_5b..5d``), ``stage2/{0..4}`` (``Mixed_6a..6e``),
``stage3/{0..2}`` (``Mixed_7a..7c``), each block's convolutions named as in torchvision
(``branch1x1``, ``branch5x5_1``, ...), ``aux_head/{conv0,conv1,fc}`` when ``aux_logits``,
``head/{kernel,bias}``.

``extras``: ``stem`` (35x35x192 at 299 px, after the second max pool), each Inception block
by its TF-slim name (``mixed_5b`` .. ``mixed_7c``), ``stage1`` (= ``mixed_5d``, 35x35x288),
``stage2`` (= ``mixed_6e``, 17x17x768), ``stage3`` (= ``mixed_7c``, 8x8x2048),
``pre_logits`` (pooled 2048 features) and, with ``aux_logits=True``, ``aux_logits``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from models.layers import ConvBN, avg_pool, global_avg_pool, max_pool
from models.metadata import INCEPTION_MEAN, INCEPTION_STD, WeightMetadata
from models.registry import register_model

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9  # Flax convention; PyTorch momentum=0.1
MIN_INPUT_SIZE = 75  # below this the 8x8 grid (at 299 px) vanishes
NUM_FEATURES = 2048


def _conv_bn(
    in_features: int,
    out_features: int,
    kernel: int | tuple[int, int],
    *,
    stride: int = 1,
    padding: str = "same",
    rngs: nnx.Rngs,
) -> ConvBN:
    """Conv-BN-ReLU; ``"same"`` (stride 1 only) pads ``k // 2`` per side, ``"valid"`` none."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if padding == "same":
        if stride != 1:
            raise ValueError("Inception-V3 uses 'same' padding only at stride 1")
        pad = ((kh // 2, kh // 2), (kw // 2, kw // 2))
    elif padding == "valid":
        pad = "VALID"
    else:
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    return ConvBN(
        in_features,
        out_features,
        (kh, kw),
        stride=stride,
        padding=pad,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        rngs=rngs,
    )


def _avg_pool_3x3(x: jax.Array, count_include_pad: bool) -> jax.Array:
    """The ``branch_pool`` average pool: 3x3, stride 1, one pixel of padding per side."""
    return avg_pool(x, 3, 1, padding=1, count_include_pad=count_include_pad)


# ----------------------------------------------------------------------------- blocks

# A block's convolutions as a graph: per branch, its steps in order; a step holding several
# names applies those convolutions in parallel to the same input and concatenates them.
# Names are the ConvBN attributes (torchvision's names); pools are not listed. The converters
# enumerate convolutions from this (Keras orders its layers by their depth in this graph).
Branches = tuple[tuple[tuple[str, ...], ...], ...]


class Stem(nnx.Module):
    """Conv2d_1a_3x3 (/2) -> 2a_3x3 -> 2b_3x3 -> max pool -> 3b_1x1 -> 4a_3x3 -> max pool."""

    def __init__(self, in_channels: int, *, rngs: nnx.Rngs):
        self.conv_1a = _conv_bn(in_channels, 32, 3, stride=2, padding="valid", rngs=rngs)
        self.conv_2a = _conv_bn(32, 32, 3, padding="valid", rngs=rngs)
        self.conv_2b = _conv_bn(32, 64, 3, rngs=rngs)
        self.conv_3b = _conv_bn(64, 80, 1, padding="valid", rngs=rngs)
        self.conv_4a = _conv_bn(80, 192, 3, padding="valid", rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv_2b(self.conv_2a(self.conv_1a(x)))
        x = self.conv_4a(self.conv_3b(max_pool(x, 3, 2)))
        return max_pool(x, 3, 2)


class InceptionA(nnx.Module):
    """Mixed_5b..5d (35x35): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg pool-1x1."""

    BRANCHES: Branches = (
        (("branch1x1",),),
        (("branch5x5_1",), ("branch5x5_2",)),
        (("branch3x3dbl_1",), ("branch3x3dbl_2",), ("branch3x3dbl_3",)),
        (("branch_pool",),),
    )

    def __init__(
        self, in_features: int, pool_features: int, *, count_include_pad: bool, rngs: nnx.Rngs
    ):
        conv = functools.partial(_conv_bn, rngs=rngs)
        self.branch1x1 = conv(in_features, 64, 1)
        self.branch5x5_1 = conv(in_features, 48, 1)
        self.branch5x5_2 = conv(48, 64, 5)
        self.branch3x3dbl_1 = conv(in_features, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3)
        self.branch3x3dbl_3 = conv(96, 96, 3)
        self.branch_pool = conv(in_features, pool_features, 1)
        self.count_include_pad = count_include_pad

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg_pool_3x3(x, self.count_include_pad)),
            ],
            axis=-1,
        )


class InceptionB(nnx.Module):
    """Mixed_6a, grid reduction 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | max pool/2."""

    BRANCHES: Branches = (
        (("branch3x3",),),
        (("branch3x3dbl_1",), ("branch3x3dbl_2",), ("branch3x3dbl_3",)),
    )

    def __init__(self, in_features: int, *, rngs: nnx.Rngs):
        conv = functools.partial(_conv_bn, rngs=rngs)
        self.branch3x3 = conv(in_features, 384, 3, stride=2, padding="valid")
        self.branch3x3dbl_1 = conv(in_features, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3)
        self.branch3x3dbl_3 = conv(96, 96, 3, stride=2, padding="valid")

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                max_pool(x, 3, 2),
            ],
            axis=-1,
        )


class InceptionC(nnx.Module):
    """Mixed_6b..6e (17x17), factorised 7x7: 1x1 | 1x1-1x7-7x1 | 1x1-(7x1-1x7)x2 | pool-1x1."""

    BRANCHES: Branches = (
        (("branch1x1",),),
        (("branch7x7_1",), ("branch7x7_2",), ("branch7x7_3",)),
        tuple((f"branch7x7dbl_{i}",) for i in range(1, 6)),
        (("branch_pool",),),
    )

    def __init__(
        self, in_features: int, channels_7x7: int, *, count_include_pad: bool, rngs: nnx.Rngs
    ):
        conv = functools.partial(_conv_bn, rngs=rngs)
        c7 = channels_7x7
        self.branch1x1 = conv(in_features, 192, 1)
        self.branch7x7_1 = conv(in_features, c7, 1)
        self.branch7x7_2 = conv(c7, c7, (1, 7))
        self.branch7x7_3 = conv(c7, 192, (7, 1))
        self.branch7x7dbl_1 = conv(in_features, c7, 1)
        self.branch7x7dbl_2 = conv(c7, c7, (7, 1))
        self.branch7x7dbl_3 = conv(c7, c7, (1, 7))
        self.branch7x7dbl_4 = conv(c7, c7, (7, 1))
        self.branch7x7dbl_5 = conv(c7, 192, (1, 7))
        self.branch_pool = conv(in_features, 192, 1)
        self.count_include_pad = count_include_pad

    def __call__(self, x: jax.Array) -> jax.Array:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = self.branch7x7dbl_1(x)
        for conv in (
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            d7 = conv(d7)
        pool = self.branch_pool(_avg_pool_3x3(x, self.count_include_pad))
        return jnp.concatenate([self.branch1x1(x), b7, d7, pool], axis=-1)


class InceptionD(nnx.Module):
    """Mixed_7a, grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max pool/2."""

    BRANCHES: Branches = (
        (("branch3x3_1",), ("branch3x3_2",)),
        tuple((f"branch7x7x3_{i}",) for i in range(1, 5)),
    )

    def __init__(self, in_features: int, *, rngs: nnx.Rngs):
        conv = functools.partial(_conv_bn, rngs=rngs)
        self.branch3x3_1 = conv(in_features, 192, 1)
        self.branch3x3_2 = conv(192, 320, 3, stride=2, padding="valid")
        self.branch7x7x3_1 = conv(in_features, 192, 1)
        self.branch7x7x3_2 = conv(192, 192, (1, 7))
        self.branch7x7x3_3 = conv(192, 192, (7, 1))
        self.branch7x7x3_4 = conv(192, 192, 3, stride=2, padding="valid")

    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return jnp.concatenate([b3, b7, max_pool(x, 3, 2)], axis=-1)


class InceptionE(nnx.Module):
    """Mixed_7b/7c (8x8), expanded: 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | pool-1x1."""

    BRANCHES: Branches = (
        (("branch1x1",),),
        (("branch3x3_1",), ("branch3x3_2a", "branch3x3_2b")),
        (("branch3x3dbl_1",), ("branch3x3dbl_2",), ("branch3x3dbl_3a", "branch3x3dbl_3b")),
        (("branch_pool",),),
    )

    def __init__(self, in_features: int, *, count_include_pad: bool, rngs: nnx.Rngs):
        conv = functools.partial(_conv_bn, rngs=rngs)
        self.branch1x1 = conv(in_features, 320, 1)
        self.branch3x3_1 = conv(in_features, 384, 1)
        self.branch3x3_2a = conv(384, 384, (1, 3))
        self.branch3x3_2b = conv(384, 384, (3, 1))
        self.branch3x3dbl_1 = conv(in_features, 448, 1)
        self.branch3x3dbl_2 = conv(448, 384, 3)
        self.branch3x3dbl_3a = conv(384, 384, (1, 3))
        self.branch3x3dbl_3b = conv(384, 384, (3, 1))
        self.branch_pool = conv(in_features, 192, 1)
        self.count_include_pad = count_include_pad

    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return jnp.concatenate(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(d3),
                self.branch3x3dbl_3b(d3),
                self.branch_pool(_avg_pool_3x3(x, self.count_include_pad)),
            ],
            axis=-1,
        )


class AuxHead(nnx.Module):
    """torchvision's ``InceptionAux`` on the 17x17x768 features: a training-time regulariser.

    5x5/3 average pool -> 1x1 conv (128) -> 5x5 conv (768, valid) -> global average -> linear.
    torchvision's head needs a map of at least 17x17 (inputs of 299 px); here a map smaller
    than 5x5 is pooled over its whole extent and the pooled map is zero-padded (centred) to
    5x5 before the 5x5 convolution, so the head also runs down to 75 px. At 299 px and above
    nothing is padded and the head equals torchvision's.
    """

    def __init__(self, in_features: int, num_classes: int, *, rngs: nnx.Rngs):
        self.conv0 = _conv_bn(in_features, 128, 1, rngs=rngs)
        self.conv1 = _conv_bn(128, 768, 5, padding="valid", rngs=rngs)
        self.fc = nnx.Linear(768, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        window = (min(5, x.shape[1]), min(5, x.shape[2]))
        x = self.conv0(nnx.avg_pool(x, window, (3, 3), "VALID"))
        short_h, short_w = max(0, 5 - x.shape[1]), max(0, 5 - x.shape[2])
        if short_h or short_w:
            x = jnp.pad(
                x,
                (
                    (0, 0),
                    (short_h // 2, short_h - short_h // 2),
                    (short_w // 2, short_w - short_w // 2),
                    (0, 0),
                ),
            )
        return self.fc(global_avg_pool(self.conv1(x)))


# ----------------------------------------------------------------------------- model

# The Inception blocks per stage, in network order, with their TF-slim names (``extras`` keys;
# torchvision calls them ``Mixed_5b`` ...) and classes, as InceptionV3.__init__ builds them.
# The converters walk this table to name every tensor.
STAGE_BLOCKS: dict[str, tuple[tuple[str, type[nnx.Module]], ...]] = {
    "stage1": (("mixed_5b", InceptionA), ("mixed_5c", InceptionA), ("mixed_5d", InceptionA)),
    "stage2": (
        ("mixed_6a", InceptionB),
        ("mixed_6b", InceptionC),
        ("mixed_6c", InceptionC),
        ("mixed_6d", InceptionC),
        ("mixed_6e", InceptionC),
    ),
    "stage3": (("mixed_7a", InceptionD), ("mixed_7b", InceptionE), ("mixed_7c", InceptionE)),
}
STEM_CONVS = ("conv_1a", "conv_2a", "conv_2b", "conv_3b", "conv_4a")


class InceptionV3(nnx.Module):
    """Inception-V3; ``__call__(x) -> (logits, extras)`` (see the module docstring).

    Options: ``aux_logits`` adds the auxiliary head (its logits in ``extras["aux_logits"]``,
    computed on every call; in ``eval()`` mode a jitted function that ignores them lets XLA
    drop them, in training its BatchNorm statistics update either way);
    ``avg_pool_count_include_pad`` (False: Keras/TF, True: torchvision/timm);
    ``dropout_rate`` before the classifier (torchvision trains with 0.5; off in ``eval()``).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = False,
        avg_pool_count_include_pad: bool = False,
        dropout_rate: float = 0.0,
        rngs: nnx.Rngs,
    ):
        pad_rule = {"count_include_pad": avg_pool_count_include_pad}
        self.stem = Stem(in_channels, rngs=rngs)
        self.stage1 = nnx.List(
            [
                InceptionA(192, 32, **pad_rule, rngs=rngs),
                InceptionA(256, 64, **pad_rule, rngs=rngs),
                InceptionA(288, 64, **pad_rule, rngs=rngs),
            ]
        )
        self.stage2 = nnx.List(
            [
                InceptionB(288, rngs=rngs),
                InceptionC(768, 128, **pad_rule, rngs=rngs),
                InceptionC(768, 160, **pad_rule, rngs=rngs),
                InceptionC(768, 160, **pad_rule, rngs=rngs),
                InceptionC(768, 192, **pad_rule, rngs=rngs),
            ]
        )
        self.aux_head = AuxHead(768, num_classes, rngs=rngs) if aux_logits else None
        self.stage3 = nnx.List(
            [
                InceptionD(768, rngs=rngs),
                InceptionE(1280, **pad_rule, rngs=rngs),
                InceptionE(2048, **pad_rule, rngs=rngs),
            ]
        )
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)
        self.head = nnx.Linear(NUM_FEATURES, num_classes, rngs=rngs)
        self.num_features = NUM_FEATURES

    def __call__(self, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        if x.ndim != 4 or min(x.shape[1:3]) < MIN_INPUT_SIZE:
            raise ValueError(
                f"Inception-V3 takes NHWC images of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}, "
                f"got shape {tuple(x.shape)}"
            )
        extras = {}
        x = self.stem(x)
        extras["stem"] = x
        for stage, blocks in STAGE_BLOCKS.items():
            for (name, _), block in zip(blocks, getattr(self, stage), strict=True):
                x = block(x)
                extras[name] = x
            extras[stage] = x
            if stage == "stage2" and self.aux_head is not None:
                extras["aux_logits"] = self.aux_head(x)
        pooled = global_avg_pool(x)
        extras["pre_logits"] = pooled
        return self.head(self.dropout(pooled)), extras


# ----------------------------------------------------------------------------- variants


def inception_v3(*, num_classes: int, in_channels: int, rngs: nnx.Rngs, **kwargs) -> InceptionV3:
    """Registry builder; ``kwargs``: ``aux_logits``, ``avg_pool_count_include_pad``,
    ``dropout_rate`` (see :class:`InceptionV3`)."""
    return InceptionV3(num_classes=num_classes, in_channels=in_channels, rngs=rngs, **kwargs)


# ----------------------------------------------------------------------------- weight sets

FIRST_CONV_PATH = "stem/conv_1a/conv"
AUX_CLASSIFIER_PATH = "aux_head/fc"


@dataclasses.dataclass(frozen=True)
class WeightSet:
    """One upstream source's ImageNet-1k Inception-V3 weights and how they are evaluated."""

    tag: str
    crop_fraction: float
    interpolation: str
    avg_pool_count_include_pad: bool  # the pooling rule the weights were trained with
    aux_logits: bool  # whether the converted file keeps the auxiliary head
    source: str
    license: str

    @property
    def model_kwargs(self) -> dict[str, bool]:
        return {
            "avg_pool_count_include_pad": self.avg_pool_count_include_pad,
            "aux_logits": self.aux_logits,
        }


# Published ImageNet-1k weight sets, per converter source. All use Inception scaling (mean =
# std = 0.5) and 299-px inputs; they differ in the average-pool padding rule they were trained
# with, in whether the auxiliary head is kept, and in evaluation crop and interpolation.
# - keras: keras.applications' file (TF-slim's checkpoint, ported); TF-slim evaluates with a
#   0.875 central crop and bilinear resizing; Keras/TF "same" pooling excludes the padding.
# - torchvision IMAGENET1K_V1: resize 342 -> crop 299, bilinear, ImageNet mean/std followed
#   by ``transform_input=True``, which renormalises to mean = std = 0.5 (folded in here).
#   The file holds the auxiliary head (``AuxLogits``), which is kept.
# - timm ``inception_v3.tv_in1k`` (the same tensors): crop 0.875, bicubic, Inception mean/std.
#   Auxiliary tensors are dropped for timm (its ``tf_in1k``/``tf_adv_in1k`` have none).
#   ``gluon_in1k`` expects the ImageNet mean/std: convert it with ``launch.convert
#   --mean=0.485,0.456,0.406 --std=0.229,0.224,0.225``.
WEIGHT_SETS: dict[str, WeightSet] = {
    "keras": WeightSet(
        tag="keras_in1k",
        crop_fraction=0.875,
        interpolation="bilinear",
        avg_pool_count_include_pad=False,
        aux_logits=False,
        source="keras.applications.InceptionV3 weights='imagenet' "
        "(inception_v3_weights_tf_dim_ordering_tf_kernels.h5, "
        "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/)",
        license="Apache-2.0 (Keras; ported from the TF-slim Inception-V3 checkpoint)",
    ),
    "torchvision": WeightSet(
        tag="tv_in1k",
        crop_fraction=299 / 342,
        interpolation="bilinear",
        avg_pool_count_include_pad=True,
        aux_logits=True,
        source="torchvision.models.inception_v3 IMAGENET1K_V1 "
        "(inception_v3_google-0cc3c7bd.pth, https://download.pytorch.org/models/)",
        license="BSD-3-Clause",
    ),
    "timm": WeightSet(
        tag="tv_in1k",
        crop_fraction=0.875,
        interpolation="bicubic",
        avg_pool_count_include_pad=True,
        aux_logits=False,
        source="timm inception_v3.tv_in1k (https://huggingface.co/timm/inception_v3.tv_in1k)",
        license="Apache-2.0",
    ),
}


def weight_metadata(source: str, class_names: tuple[str, ...] = ()) -> WeightMetadata:
    """Metadata of ``source``'s ImageNet Inception-V3 weights (see :data:`WEIGHT_SETS`)."""
    if source not in WEIGHT_SETS:
        raise ValueError(
            f"no Inception-V3 weight set from {source!r}; known: {', '.join(WEIGHT_SETS)}"
        )
    weights = WEIGHT_SETS[source]
    return DEFAULT_METADATA.replace(
        tag=f"inception_v3.{weights.tag}",
        crop_fraction=weights.crop_fraction,
        interpolation=weights.interpolation,
        classifier_paths=("head", AUX_CLASSIFIER_PATH) if weights.aux_logits else ("head",),
        source=weights.source,
        license=weights.license,
        class_names=class_names,
        model_kwargs=weights.model_kwargs,
    )


# ----------------------------------------------------------------------------- registration

# What create("inception_v3", pretrained=None) expects: Keras/TF conventions, no aux head.
DEFAULT_METADATA = WeightMetadata(
    arch="inception_v3",
    num_classes=1000,
    input_size=299,
    crop_fraction=0.875,
    interpolation="bilinear",
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    classifier_paths=("head",),
    first_conv_path=FIRST_CONV_PATH,
    source="random initialisation; ImageNet weights via "
    "`python -m launch.convert --source=keras|torchvision|timm --arch=inception_v3`",
    license="Apache-2.0",
)

register_model("inception_v3", inception_v3, DEFAULT_METADATA)
