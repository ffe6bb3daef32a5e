"""The shifted multiply-add depthwise convolution equals XLA's native grouped convolution.

Forward and gradients (input and kernel), float32, over strides, dilations, paddings (VALID,
SAME with odd and even sizes, explicit asymmetric pairs) and kernel sizes; the kernel-gradient
loop is run whole, per image and in multi-image chunks; ``ConvBN`` with ``groups = C`` uses the
fast form on CPU with unchanged parameter names.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import layers
from models.layers import ConvBN, depthwise_conv

CASES = [
    # (input HW, kernel, strides, dilation, padding)
    ((9, 9), 3, (1, 1), (1, 1), ((1, 1), (1, 1))),
    ((10, 9), 3, (2, 2), (1, 1), "SAME"),
    ((11, 12), 5, (2, 2), (1, 1), "SAME"),
    ((12, 12), 5, (1, 1), (1, 1), "VALID"),
    ((13, 10), 3, (2, 1), (2, 2), ((0, 2), (1, 0))),
    ((8, 8), 1, (1, 1), (1, 1), "SAME"),
    ((15, 15), 3, (3, 3), (1, 1), 1),
    ((7, 9), (1, 3), (1, 1), (1, 1), ((0, 0), (1, 1))),
]


def _rand(key: int, shape) -> jax.Array:
    return jax.random.normal(jax.random.key(key), shape, jnp.float32)


def _both(x, k, strides, dilation, padding):
    """(output, d input, d kernel) of both forms, in one compiled program."""

    def run(impl, x, k):
        def f(x, k):
            return depthwise_conv(
                x, k, strides=strides, padding=padding, dilation=dilation, impl=impl
            )

        y, vjp = jax.vjp(f, x, k)
        cot = jnp.cos(jnp.arange(y.size, dtype=y.dtype).reshape(y.shape))
        return y, *vjp(cot)

    return jax.jit(lambda x, k: (run("native", x, k), run("shifted", x, k)))(x, k)


@pytest.mark.parametrize("hw, kernel, strides, dilation, padding", CASES)
def test_shifted_equals_native_forward_and_gradients(hw, kernel, strides, dilation, padding):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = _rand(0, (2, *hw, 6))
    k = _rand(1, (kh, kw, 1, 6))
    native, shifted = _both(x, k, strides, dilation, padding)
    for name, a, b in zip(("output", "d input", "d kernel"), native, shifted, strict=True):
        assert a.shape == b.shape, name
        scale = float(jnp.max(jnp.abs(a))) + 1e-6
        np.testing.assert_allclose(b, a, atol=2e-6 * scale, rtol=0, err_msg=name)


@pytest.mark.parametrize("chunk_bytes", [1, 2 * 12 * 12 * 4 * 4])
def test_kernel_gradient_chunking(monkeypatch, chunk_bytes):
    """Per image (1 byte) and two images per step (whole batch: every CASES run)."""
    monkeypatch.setattr(layers, "_KERNEL_GRAD_CHUNK_BYTES", chunk_bytes)
    x, k = _rand(2, (6, 10, 10, 4)), _rand(3, (3, 3, 1, 4))
    native, shifted = _both(x, k, (1, 1), (1, 1), "SAME")
    np.testing.assert_allclose(shifted[2], native[2], atol=1e-4, rtol=1e-5)


def test_convbn_depthwise_uses_the_fast_form_on_cpu_with_the_same_parameters():
    block = ConvBN(8, 8, 3, stride=2, padding="SAME", groups=8, rngs=nnx.Rngs(0))
    assert block.conv.kernel.shape == (3, 3, 1, 8)
    assert block.conv.conv_general_dilated is layers.depthwise_conv_general_dilated
    dense = ConvBN(8, 16, 3, padding=1, rngs=nnx.Rngs(0))
    assert dense.conv.conv_general_dilated is jax.lax.conv_general_dilated
    block.eval()
    x = _rand(4, (2, 9, 9, 8))
    hlo = nnx.jit(lambda b, x: b(x)).lower(block, x).as_text()
    assert ("feature_group_count = 8" in hlo) == (jax.default_backend() != "cpu")

    @nnx.jit
    def both(block, x):
        native = depthwise_conv(
            x, block.conv.kernel[...], strides=(2, 2), padding="SAME", impl="native"
        )
        return block(x), jax.nn.relu(block.bn(native))

    got, expected = both(block, x)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_auto_picks_by_backend_and_bad_input_is_refused():
    assert layers.depthwise_impl_for_backend("cpu") == "shifted"
    assert layers.depthwise_impl_for_backend("gpu") == "native"
    assert layers.depthwise_impl_for_backend("tpu") == "native"
    with pytest.raises(ValueError, match="impl"):
        depthwise_conv(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 1, 2)), impl="fast")
    with pytest.raises(ValueError, match="kernel"):
        depthwise_conv(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 2)))


def test_bfloat16_inputs_accumulate_in_float32():
    x, k = _rand(5, (1, 8, 8, 4)), _rand(6, (3, 3, 1, 4))
    ref = depthwise_conv(x, k, padding="SAME", impl="native")
    got = depthwise_conv(
        x.astype(jnp.bfloat16), k.astype(jnp.bfloat16), padding="SAME", impl="shifted"
    )
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(got.astype(jnp.float32), ref, atol=0.1, rtol=0.05)
