"""Layers shared by the model families.

Numerical conventions (checked by the parity tests):
- Kernels are HWIO (PyTorch OIHW and Keras HWIO are converted in ``models.convert``).
- ``momentum`` is Flax's: running = momentum * running + (1 - momentum) * batch, so Flax 0.9
  equals PyTorch ``momentum=0.1``; Keras uses Flax's convention (its InceptionV3 uses 0.99).
- ``epsilon``: torchvision ResNet 1e-5, Inception-V3 (Keras and torchvision) 1e-3,
  EfficientNet-Lite 1e-3. Each family passes its own.
- Padding is passed explicitly: PyTorch-style symmetric ``((p, p), (p, p))`` or Keras/TF
  ``"SAME"`` / ``"VALID"`` (TF's SAME pads the extra row/column at the bottom/right).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

Padding = Any  # "SAME" | "VALID" | int | sequence of (low, high) pairs


def pad_arg(padding: Padding) -> Padding:
    """Turn an int into PyTorch-style symmetric padding; pass strings and pairs through."""
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    return padding


class ConvBN(nnx.Module):
    """Conv (no bias) -> BatchNorm -> optional activation; sub-modules named ``conv``/``bn``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int = 1,
        padding: Padding = 0,
        groups: int = 1,
        epsilon: float = 1e-5,
        momentum: float = 0.9,
        act: Callable[[jax.Array], jax.Array] | None = jax.nn.relu,
        rngs: nnx.Rngs,
    ):
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.conv = nnx.Conv(
            in_features,
            out_features,
            ks,
            strides=(stride, stride),
            padding=pad_arg(padding),
            feature_group_count=groups,
            use_bias=False,
            kernel_init=nnx.initializers.variance_scaling(2.0, "fan_out", "normal"),
            rngs=rngs,
        )
        self.bn = nnx.BatchNorm(out_features, epsilon=epsilon, momentum=momentum, rngs=rngs)
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


def global_avg_pool(x: jax.Array) -> jax.Array:
    """NHWC -> NC, averaging in float32 for stability under bf16 compute."""
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2)).astype(x.dtype)


def max_pool(x: jax.Array, window: int, stride: int, padding: Padding = "VALID") -> jax.Array:
    return nnx.max_pool(x, (window, window), (stride, stride), pad_arg(padding))


def avg_pool(
    x: jax.Array, window: int, stride: int, padding: Padding = "VALID", count_include_pad: bool = True
) -> jax.Array:
    return nnx.avg_pool(
        x, (window, window), (stride, stride), pad_arg(padding), count_include_pad=count_include_pad
    )
