"""Layers shared by the model families.

Numerical conventions (checked by the parity tests):
- Kernels are HWIO (PyTorch OIHW and Keras HWIO are converted in ``models.convert``).
- ``momentum`` is Flax's: running = momentum * running + (1 - momentum) * batch, so Flax 0.9
  equals PyTorch ``momentum=0.1``; Keras uses Flax's convention (its InceptionV3 uses 0.99).
- ``epsilon``: torchvision ResNet 1e-5, Inception-V3 (Keras and torchvision) 1e-3,
  EfficientNet-Lite 1e-3. Each family passes its own.
- Padding is passed explicitly: PyTorch-style symmetric ``((p, p), (p, p))`` or Keras/TF
  ``"SAME"`` / ``"VALID"`` (TF's SAME pads the extra row/column at the bottom/right).
- Depthwise convolutions (``groups == channels``) keep ``nnx.Conv``'s parameters (kernel
  ``(kh, kw, 1, C)``) but run through :func:`depthwise_conv_general_dilated`: XLA:CPU lowers
  ``feature_group_count = C`` as a dense grouped convolution (~40x slower forward, ~10x slower
  forward + backward than the same maths as shifted multiply-adds), so on CPU the layer is
  written as ``kh * kw`` shifted, strided slices times a per-channel weight, with a hand-written
  kernel gradient; GPUs and TPUs keep the native convolution (their kernels are good).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

Padding = Any  # "SAME" | "VALID" | int | sequence of (low, high) pairs


def pad_arg(padding: Padding) -> Padding:
    """Turn an int into PyTorch-style symmetric padding; pass strings and pairs through."""
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    return padding


# ----------------------------------------------------------------------------- depthwise

DEPTHWISE_IMPLS = ("auto", "shifted", "native")
# Images per step of the kernel-gradient loop are chosen so that one step's padded input fits
# in about this many bytes (cache-sized: a single pass over the whole batch per tap is ~4x
# slower on XLA:CPU, because every tap's slice is then materialised in memory).
_KERNEL_GRAD_CHUNK_BYTES = 2 << 20


_forced_impl: list[str] = []  # set by depthwise_override (benchmarks compare both forms)


def depthwise_impl_for_backend(backend: str | None = None) -> str:
    """``"shifted"`` on CPU (XLA:CPU's grouped convolution is slow), ``"native"`` elsewhere
    (or what an enclosing :func:`depthwise_override` forces)."""
    if _forced_impl and backend is None:
        return _forced_impl[-1]
    return "shifted" if (backend or jax.default_backend()) == "cpu" else "native"


@contextlib.contextmanager
def depthwise_override(impl: str) -> Iterator[None]:
    """Trace depthwise layers with ``impl`` (``"native"``/``"shifted"``) inside the block, for
    before/after benchmarks. Trace time only: a function jitted earlier keeps its form."""
    if impl not in DEPTHWISE_IMPLS[1:]:
        raise ValueError(f"impl {impl!r} is not one of {DEPTHWISE_IMPLS[1:]}")
    _forced_impl.append(impl)
    try:
        yield
    finally:
        _forced_impl.pop()


def _resolve_pads(
    padding: Padding,
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilation: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """Explicit ``(low, high)`` pads per spatial axis for any padding ``lax`` accepts."""
    if isinstance(padding, str):
        dilated = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
        return tuple(lax.padtype_to_pads(tuple(spatial), dilated, tuple(strides), padding))
    padding = pad_arg(padding)
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _tap_slice(xp: jax.Array, i: int, j: int, out_hw: tuple[int, int], strides, dilation):
    """The input pixels kernel tap (i, j) multiplies, for every output pixel:
    ``[.., Ho, Wo, C]``."""
    (ho, wo), (sh, sw), (dh, dw) = out_hw, strides, dilation
    start = (0,) * (xp.ndim - 3) + (i * dh, j * dw, 0)
    limit = (*xp.shape[:-3], i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1, xp.shape[-1])
    steps = None if sh == sw == 1 else (1,) * (xp.ndim - 3) + (sh, sw, 1)
    return lax.slice(xp, start, limit, steps)


def _shifted_forward(xp, kernel, out_hw, strides, dilation):
    acc_dtype = jnp.promote_types(xp.dtype, jnp.float32)
    kh, kw = kernel.shape[:2]
    out = None
    for i in range(kh):
        for j in range(kw):
            tap = _tap_slice(xp, i, j, out_hw, strides, dilation).astype(acc_dtype)
            term = tap * kernel[i, j, 0].astype(acc_dtype)
            out = term if out is None else out + term
    return out


def _kernel_grad(xp, g, kernel_hw, out_hw, strides, dilation):
    """``dK[i, j, 0, c] = sum over (n, y, x) of tap(i, j)[n, y, x, c] * g[n, y, x, c]``, looped
    over cache-sized chunks of images (see ``_KERNEL_GRAD_CHUNK_BYTES``)."""
    acc_dtype = jnp.promote_types(xp.dtype, jnp.float32)
    kh, kw = kernel_hw
    n = xp.shape[0]
    per_image = max(1, xp[0].size * xp.dtype.itemsize)
    target = max(1, _KERNEL_GRAD_CHUNK_BYTES // per_image)
    chunk = max(d for d in range(1, min(n, target) + 1) if n % d == 0)

    def taps(args):
        xs, gs = args
        gs = gs.astype(acc_dtype)
        if xs.dtype != acc_dtype:
            xs = xs.astype(acc_dtype)
        sums = [
            jnp.sum(
                (_tap_slice(xs, i, j, out_hw, strides, dilation) * gs).reshape(-1, gs.shape[-1]),
                axis=0,
            )
            for i in range(kh)
            for j in range(kw)
        ]
        return jnp.stack(sums)

    if chunk == n:
        total = taps((xp, g))
    elif chunk == 1:
        total = jnp.sum(lax.map(taps, (xp, g)), axis=0)
    else:
        split = lambda a: a.reshape(n // chunk, chunk, *a.shape[1:])
        total = jnp.sum(lax.map(taps, (split(xp), split(g))), axis=0)
    return total.reshape(kh, kw, 1, -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _shifted_depthwise(x, kernel, strides, pads, dilation):
    return _shifted_depthwise_fwd(x, kernel, strides, pads, dilation)[0]


def _padded_and_out_hw(x, kernel, strides, pads, dilation):
    zero = jnp.zeros((), x.dtype)
    (top, bottom), (left, right) = pads
    xp = lax.pad(x, zero, [(0, 0, 0), (top, bottom, 0), (left, right, 0), (0, 0, 0)])
    out_hw = tuple(
        (xp.shape[1 + a] - ((kernel.shape[a] - 1) * dilation[a] + 1)) // strides[a] + 1
        for a in range(2)
    )
    return xp, out_hw


def _shifted_depthwise_fwd(x, kernel, strides, pads, dilation):
    xp, out_hw = _padded_and_out_hw(x, kernel, strides, pads, dilation)
    y = _shifted_forward(xp, kernel, out_hw, strides, dilation).astype(
        jnp.result_type(x.dtype, kernel.dtype)
    )
    return y, (x, kernel)


def _shifted_depthwise_bwd(strides, pads, dilation, residuals, g):
    x, kernel = residuals
    # Input gradient: autodiff of the forward (pads and strided slices transpose to pads with
    # interior zeros: a handful of fused elementwise passes).
    _, input_vjp = jax.vjp(
        lambda v: _shifted_depthwise_fwd(v, kernel, strides, pads, dilation)[0], x
    )
    (dx,) = input_vjp(g)
    xp, out_hw = _padded_and_out_hw(x, kernel, strides, pads, dilation)
    dk = _kernel_grad(xp, g, kernel.shape[:2], out_hw, strides, dilation)
    return dx, dk.astype(kernel.dtype)


_shifted_depthwise.defvjp(_shifted_depthwise_fwd, _shifted_depthwise_bwd)


def depthwise_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    strides: Sequence[int] = (1, 1),
    padding: Padding = "VALID",
    dilation: Sequence[int] = (1, 1),
    impl: str = "auto",
) -> jax.Array:
    """Depthwise 2-D convolution, NHWC input, kernel ``(kh, kw, 1, C)`` (channel multiplier 1).

    ``impl``: ``"native"`` = ``lax.conv_general_dilated(feature_group_count=C)``; ``"shifted"``
    = ``kh * kw`` shifted multiply-adds with a hand-written kernel gradient (fast on XLA:CPU);
    ``"auto"`` picks by the default backend when traced (:func:`depthwise_impl_for_backend`).
    Both give the same result to float rounding (tests/models/test_depthwise.py).
    """
    if impl not in DEPTHWISE_IMPLS:
        raise ValueError(f"impl {impl!r} is not one of {DEPTHWISE_IMPLS}")
    if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != 1 or kernel.shape[3] != x.shape[3]:
        raise ValueError(
            f"depthwise_conv takes NHWC x and a (kh, kw, 1, C) kernel, "
            f"got {x.shape}, {kernel.shape}"
        )
    strides, dilation = tuple(int(s) for s in strides), tuple(int(d) for d in dilation)
    if impl == "auto":
        impl = depthwise_impl_for_backend()
    if impl == "native":
        return lax.conv_general_dilated(
            x,
            kernel,
            strides,
            pad_arg(padding),
            rhs_dilation=dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=x.shape[3],
        )
    pads = _resolve_pads(padding, x.shape[1:3], kernel.shape[:2], strides, dilation)
    return _shifted_depthwise(x, kernel, strides, pads, dilation)


_NHWC = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def depthwise_conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: Padding,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    **kwargs: Any,
) -> jax.Array:
    """``lax.conv_general_dilated`` with the same signature, for ``nnx.Conv``'s
    ``conv_general_dilated`` hook: a 2-D NHWC depthwise convolution (channel multiplier 1, no
    input dilation) goes to :func:`depthwise_conv` (``impl="auto"``); anything else, and any
    non-CPU backend, to ``lax`` unchanged."""
    depthwise = (
        lhs.ndim == 4
        and rhs.ndim == 4
        and feature_group_count == lhs.shape[-1] == rhs.shape[-1]
        and rhs.shape[-2] == 1
        and batch_group_count == 1
        and all(d == 1 for d in (lhs_dilation or (1, 1)))
        and preferred_element_type is None
        and not kwargs.get("out_sharding")
        and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == _NHWC
        and depthwise_impl_for_backend() == "shifted"
    )
    if depthwise:
        return depthwise_conv(
            lhs,
            rhs,
            strides=window_strides,
            padding=padding,
            dilation=rhs_dilation or (1, 1),
            impl="shifted",
        )
    extra = {k: v for k, v in kwargs.items() if v is not None}
    if preferred_element_type is not None:
        extra["preferred_element_type"] = preferred_element_type
    return lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count,
        precision=precision,
        **extra,
    )


# ----------------------------------------------------------------------------- blocks


class ConvBN(nnx.Module):
    """Conv (no bias) -> BatchNorm -> optional activation; sub-modules named ``conv``/``bn``.

    With ``groups > 1`` the convolution goes through :func:`depthwise_conv_general_dilated`
    (fast depthwise on CPU; same parameters, names and results)."""

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
            conv_general_dilated=(
                depthwise_conv_general_dilated if groups != 1 else lax.conv_general_dilated
            ),
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
    x: jax.Array,
    window: int,
    stride: int,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
) -> jax.Array:
    return nnx.avg_pool(
        x, (window, window), (stride, stride), pad_arg(padding), count_include_pad=count_include_pad
    )
