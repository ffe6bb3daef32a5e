"""The In Silico Labeling network: size rules, receptive field, seamless tiling, heads."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import models
from models.isl import expected_intensity

TINY = {"width": 4, "num_bins": 8}
pytestmark = pytest.mark.slow  # building the network eagerly: ~10 s idle, a minute under load


@pytest.fixture(scope="module")
def net():
    model = models.create("isl", num_classes=2, in_channels=3, rngs=nnx.Rngs(0), **TINY)
    # Non-zero heads (they start at zero: a uniform distribution, no gradient to the input).
    for head in model.heads:
        head.conv.kernel[...] = (
            jax.random.normal(jax.random.key(1), head.conv.kernel[...].shape) * 0.1
        )
    model.eval()
    return model


@pytest.fixture(scope="module")
def expected(net):
    """The jitted eval forward, ``state, x -> expected intensities`` (eager NNX is minutes here)."""
    graphdef, state = nnx.split(net)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x)[1]["expected"])
    return lambda x, state=state: forward(state, x), graphdef, state


def test_documented_sizes(net):
    assert net.margin == 13 and net.input_size(24) == 50 and net.input_size(64) == 90
    logits, extras = nnx.eval_shape(lambda: net(jnp.zeros((2, 50, 50, 3))))
    assert logits.shape == (2, 24, 24, 2, 8)
    assert extras["expected"].shape == (2, 24, 24, 2) and extras["features"].shape[:3] == (
        2,
        24,
        24,
    )
    assert {f"towers/{s}" for s in range(3)} <= extras.keys()
    with pytest.raises(ValueError, match="divisible by 4"):
        net.output_size(52)


def test_receptive_field_is_the_documented_30_pixels(expected):
    _, graphdef, state = expected

    def one_pixel(x):
        return nnx.merge(graphdef, state)(x)[1]["expected"][0, 12, 12].sum()

    grad = jax.jit(jax.grad(one_pixel))(jax.random.normal(jax.random.key(0), (1, 50, 50, 3)))
    rows, cols = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1))
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (30, 30)
    assert rows.min() == 12 and cols.min() == 12  # output pixel (12, 12) sits at input 25


def test_tiles_give_the_same_pixels_as_one_big_input(expected):
    """VALID convolutions: a tile's output equals the matching part of a larger input's output
    when the tile starts on the coarsest tower's grid (multiples of 4): tiles stitch seamlessly."""
    x = jax.random.uniform(jax.random.key(2), (1, 90, 90, 3))
    forward = expected[0]
    big = forward(x)
    small = forward(x[:, 8:58, 12:62])
    np.testing.assert_allclose(np.asarray(small), np.asarray(big[:, 8:32, 12:36]), atol=1e-5)


def test_expected_intensity_is_the_mean_of_the_bins():
    logits = jnp.full((1, 1, 1, 1, 5), -1e9).at[..., 4].set(0.0)
    assert float(expected_intensity(logits)[0, 0, 0, 0]) == pytest.approx(1.0)
    assert float(expected_intensity(jnp.zeros((1, 1, 1, 1, 5)))[0, 0, 0, 0]) == pytest.approx(0.5)
    fresh = models.create("isl", num_classes=1, in_channels=3, **TINY)
    assert all(not np.any(head.conv.kernel[...]) for head in fresh.heads)  # heads start uniform
