"""In Silico Labeling network (Christiansen et al., Cell 2018) in Flax NNX, scaled for a CPU.

Why this file: the paper's multi-scale network, which predicts fluorescence images from a
transmitted-light z-stack, as the engine's second task family (dense per-pixel outputs).

Design (the paper's Figure 1 / google/in-silico-labeling ``isl/models/fovea.py``, rewritten):

- **Towers at several resolutions** ("fovea-like" scales): tower ``s`` takes a centre crop of
  the input, halves the resolution ``s`` times with learned 4x4/2 modules, runs
  ``tower_modules[s]`` in-scale modules, and doubles back ``s`` times with learned 2x2/2
  transposed modules. The coarse towers see a wide context cheaply; the fine one sees detail.
- **Inception-style ("Minception") modules**, all ``VALID``: BatchNorm -> [ReLU, tanh] ->
  an expansion conv in parallel with a max pool of the module input -> BatchNorm ->
  [ReLU, tanh] -> 1x1 reduction conv, plus a residual passthrough (centre crop, average
  pool or nearest upsample matching the expansion's geometry; channels zero-padded).
  Depth grows as resolution drops (``width * 2**s``), keeping the work per module about
  equal across scales, as upstream balances it.
- **Merge**: the towers' outputs (same size) are concatenated and pass ``upper_modules``
  in-scale modules.
- **Heads**, one per label: BatchNorm -> [ReLU, tanh] -> 1x1 conv to ``num_bins`` logits: a
  distribution over discretised intensities per pixel (the paper: 256 bins, softmax
  cross-entropy). The predicted image is the expected intensity under it (``extras["expected"]``).

Sizes (everything ``VALID``, so tiles stitch without seams). With T the merged size,
output ``O = T - 2 * upper_modules``; tower ``s`` needs ``T + 2**(s+1) * n_s + 2 * (2**s - 1)``
input pixels, the network input is the largest of them. ``T`` must be divisible by
``2**(scales - 1)``. For the defaults (``tower_modules=(4, 3, 2)``, ``upper_modules=2``):
input = output + 26 (margin 13 on each side), e.g. 50 -> 24 (training crops) and 90 -> 64
(evaluation tiles). Receptive field of one output pixel: 27 x 27 input pixels (13.5 um at
the synthetic set's 0.5 um pixels; measured from the gradient support in
tests/models/test_isl.py), about two cell diameters.

Inputs: float32 NHWC in [0, 1], channels = z planes (no mean/std: the first module's
BatchNorm normalises, as upstream). BatchNorm epsilon 1e-3, momentum 0.9 (Flax convention).

Returns ``(logits [B, O, O, L, num_bins], extras)``; ``extras``: ``towers/<s>`` (each tower
after upsampling), ``merged``, ``features`` (input to the heads), ``expected``
``[B, O, O, L]`` (float32, in [0, 1]). Parameter paths: ``towers/<s>/<k>/...``,
``upper/<k>/...``, ``heads/<label index>/{bn,conv}/...``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models.layers import avg_pool, max_pool
from models.metadata import WeightMetadata
from models.registry import register_model

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9
NUM_BINS = 256  # the paper's intensity classes

# ----------------------------------------------------------------------------- blocks


def _bn(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(features, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, rngs=rngs)


def _relu_tanh(x: jax.Array) -> jax.Array:
    """Both activations side by side (upstream's residual v2 units)."""
    return jnp.concatenate([jax.nn.relu(x), jnp.tanh(x)], axis=-1)


def _match_depth(x: jax.Array, depth: int) -> jax.Array:
    """Zero-pad or crop channels so a passthrough can be added to a ``depth``-channel output."""
    have = x.shape[-1]
    if have == depth:
        return x
    if have > depth:
        return x[..., :depth]
    return jnp.pad(x, ((0, 0),) * (x.ndim - 1) + ((0, depth - have),))


def centre_crop(x: jax.Array, size: int) -> jax.Array:
    top = (x.shape[1] - size) // 2
    left = (x.shape[2] - size) // 2
    return x[:, top : top + size, left : left + size]


class Minception(nnx.Module):
    """One inception-style residual module; ``kind``: ``same`` (3x3/1), ``down`` (4x4/2), ``up``
    (2x2/2 transposed). Output size: n - 2, n / 2 - 1, 2 n."""

    def __init__(self, in_features: int, expand: int, reduce: int, *, kind: str, rngs: nnx.Rngs):
        if kind not in ("same", "down", "up"):
            raise ValueError(f"unknown module kind {kind!r}")
        self.kind = kind
        self.out_features = reduce if kind == "up" else max(reduce, in_features)
        self.bn_in = _bn(in_features, rngs)
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
        if kind == "up":
            self.expand = nnx.ConvTranspose(
                2 * in_features,
                expand,
                (2, 2),
                strides=(2, 2),
                padding="VALID",
                use_bias=False,
                kernel_init=init,
                rngs=rngs,
            )
            pooled = 0
        else:
            k, s = (3, 1) if kind == "same" else (4, 2)
            self.expand = nnx.Conv(
                2 * in_features,
                expand,
                (k, k),
                strides=(s, s),
                padding="VALID",
                use_bias=False,
                kernel_init=init,
                rngs=rngs,
            )
            pooled = in_features
        self.bn_mid = _bn(expand + pooled, rngs)
        self.reduce = nnx.Conv(
            2 * (expand + pooled),
            self.out_features,
            (1, 1),
            use_bias=False,
            kernel_init=init,
            rngs=rngs,
        )

    def _passthrough(self, x: jax.Array) -> jax.Array:
        if self.kind == "same":
            return x[:, 1:-1, 1:-1]
        if self.kind == "down":
            return avg_pool(x[:, 1:-1, 1:-1], 2, 2)
        return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.expand(_relu_tanh(self.bn_in(x)))
        if self.kind == "same":
            h = jnp.concatenate([h, max_pool(x, 3, 1)], axis=-1)
        elif self.kind == "down":
            h = jnp.concatenate([h, max_pool(x, 4, 2)], axis=-1)
        h = self.reduce(_relu_tanh(self.bn_mid(h)))
        return h + _match_depth(self._passthrough(x), self.out_features)


class LabelHead(nnx.Module):
    """Per-pixel logits over ``num_bins`` intensity classes for one label."""

    def __init__(self, in_features: int, num_bins: int, *, rngs: nnx.Rngs):
        self.bn = _bn(in_features, rngs)
        self.conv = nnx.Conv(
            2 * in_features, num_bins, (1, 1), kernel_init=nnx.initializers.zeros_init(), rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(_relu_tanh(self.bn(x)))


# ----------------------------------------------------------------------------- model


def tower_margin(scale: int, modules: int) -> int:
    """Extra input pixels tower ``scale`` needs beyond the merged size T (see module docstring)."""
    return 2 ** (scale + 1) * modules + 2 * (2**scale - 1)


class IslNet(nnx.Module):
    def __init__(
        self,
        *,
        num_classes: int = 3,
        in_channels: int = 7,
        width: int = 16,
        tower_modules: tuple[int, ...] = (4, 3, 2),
        upper_modules: int = 2,
        num_bins: int = NUM_BINS,
        rngs: nnx.Rngs,
    ):
        self.num_labels, self.num_bins = num_classes, num_bins
        self.scales = len(tower_modules)
        self.upper_count = upper_modules
        margins = [tower_margin(s, n) for s, n in enumerate(tower_modules)]
        self.tower_margins = tuple(margins)
        self.margin = (max(margins) + 2 * upper_modules) // 2  # input = output + 2 * margin
        towers = []
        for s, count in enumerate(tower_modules):
            depth = lambda scale: width * 2**scale
            layers, features = [], in_channels
            for d in range(1, s + 1):
                layers.append(Minception(features, 2 * depth(d), depth(d), kind="down", rngs=rngs))
                features = layers[-1].out_features
            for _ in range(count):
                layers.append(Minception(features, 2 * depth(s), depth(s), kind="same", rngs=rngs))
                features = layers[-1].out_features
            for d in range(s - 1, -1, -1):
                layers.append(Minception(features, 2 * depth(d), depth(d), kind="up", rngs=rngs))
                features = layers[-1].out_features
            towers.append(nnx.List(layers))
        self.towers = nnx.List(towers)
        features = sum(tower[-1].out_features if len(tower) else in_channels for tower in towers)
        upper = []
        for _ in range(upper_modules):
            upper.append(Minception(features, features, features, kind="same", rngs=rngs))
            features = upper[-1].out_features
        self.upper = nnx.List(upper)
        self.heads = nnx.List(
            [LabelHead(features, num_bins, rngs=rngs) for _ in range(num_classes)]
        )
        self.num_features = features

    # Sizes ---------------------------------------------------------------------------

    def output_size(self, input_size: int) -> int:
        """Output side for an ``input_size`` input; raises when the size does not fit."""
        merged = input_size - max(self.tower_margins)
        step = 2 ** (self.scales - 1)
        if merged <= 2 * self.upper_count or merged % step:
            raise ValueError(
                f"input size {input_size}: the merged size {merged} must exceed "
                f"{2 * self.upper_count} and be divisible by {step}; valid inputs are "
                f"{max(self.tower_margins)} + k * {step}"
            )
        return merged - 2 * self.upper_count

    def input_size(self, output_size: int) -> int:
        size = output_size + 2 * self.margin
        self.output_size(size)
        return size

    # Forward -------------------------------------------------------------------------

    def __call__(self, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        merged_size = x.shape[1] - max(self.tower_margins)
        self.output_size(x.shape[1])
        extras: dict[str, jax.Array] = {}
        outs = []
        for s, tower in enumerate(self.towers):
            h = centre_crop(x, merged_size + self.tower_margins[s])
            for layer in tower:
                h = layer(h)
            extras[f"towers/{s}"] = h
            outs.append(h)
        h = jnp.concatenate(outs, axis=-1)
        extras["merged"] = h
        for layer in self.upper:
            h = layer(h)
        extras["features"] = h
        logits = jnp.stack([head(h) for head in self.heads], axis=-2)  # [B, O, O, L, K]
        extras["expected"] = expected_intensity(logits)
        return logits, extras


def expected_intensity(logits: jax.Array) -> jax.Array:
    """Mean of the predicted intensity distribution; bin k stands for k / (K - 1)."""
    bins = logits.shape[-1]
    centres = jnp.linspace(0.0, 1.0, bins, dtype=jnp.float32)
    return jnp.sum(jax.nn.softmax(logits.astype(jnp.float32), axis=-1) * centres, axis=-1)


# ----------------------------------------------------------------------------- variants


def isl(*, num_classes: int, in_channels: int, rngs: nnx.Rngs, **kwargs) -> IslNet:
    return IslNet(num_classes=num_classes, in_channels=in_channels, rngs=rngs, **kwargs)


# No pretrained weights: the paper's TensorFlow checkpoint is not published in a form we read.

register_model(
    "isl",
    isl,
    WeightMetadata(
        arch="isl",
        num_classes=3,
        in_channels=7,
        input_size=50,  # training crop input for a 24-pixel output
        crop_fraction=1.0,
        mean=(0.0,) * 7,  # inputs arrive as float [0, 1]: no normalisation on the device
        std=(1.0,) * 7,
        classifier_paths=("heads",),
        first_conv_path="towers/0/0/expand",
        source="random initialisation (no pretrained weights)",
        license="Apache-2.0",
    ),
)
