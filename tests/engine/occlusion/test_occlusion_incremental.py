"""Incremental occlusion equals full recompute (<= 1e-5 on every probability), per family.

Random weights and small inputs keep it fast; the logits are rescaled to unit spread so that
the softmax is not saturated (a saturated softmax would make any method look exact). Window
grids are chosen so that windows touch the bottom/right borders as well as the top/left, and
every family's padding kinds (explicit, TF "SAME", VALID, -inf max-pool padding, average
pools with and without the padding counted) and strides are crossed.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

import models
from engine.mesh import make_mesh
from engine.occlusion import incremental, sweep
from engine.predictor import Predictor
from models.metadata import WeightMetadata

TOLERANCE = 1e-5
_PIXELS = WeightMetadata(arch="test", mean=(0.5,) * 3, std=(0.25,) * 3)


def _scaled_apply(arch: str, size: int, **kwargs):
    model = models.create(arch, num_classes=4, in_channels=3, rngs=nnx.Rngs(0), **kwargs)
    predictor = Predictor(model, _PIXELS, make_mesh(1))
    apply, state = predictor.apply_fn, predictor.variables
    probe = np.random.default_rng(1).integers(0, 256, (2, size, size, 3)).astype(np.float32)
    spread = float(np.std(np.asarray(jax.jit(apply)(state, probe)))) + 1e-12

    def scaled(variables, pixels):  # unit-spread logits: an unsaturated softmax
        return apply(variables, pixels) / spread

    return scaled, state


def _images(size: int, n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3)).astype(np.uint8)


def _compare(arch, size, window, stride, fill="zero", mesh_devices=1, **model_kwargs):
    apply, state = _scaled_apply(arch, size, **model_kwargs)
    images = _images(size)
    mesh = make_mesh(mesh_devices)
    got = {}
    for method in ("full", "incremental"):
        config = sweep.OcclusionConfig(
            window=window, stride=stride, fill=fill, max_batch=64, method=method
        )
        got[method] = sweep.occlusion_sensitivity(apply, state, images, config=config, mesh=mesh)
    full, inc = got["full"], got["incremental"]
    assert full.ys[-1] + window == size, "the grid must touch the bottom/right border"
    assert np.all(full.probabilities.max(axis=1) < 0.99), "softmax saturated: test is vacuous"
    assert np.abs(full.drops).max() > 1e-3, "occlusion changed nothing: test is vacuous"
    np.testing.assert_array_equal(inc.targets, full.targets)
    np.testing.assert_allclose(inc.drops, full.drops, atol=TOLERANCE, rtol=0)
    return full, inc


def test_small_cnn_exact_every_fill():
    for fill in ("zero", "mean", "blur"):
        _compare("small_cnn", 32, 8, 4, fill=fill)


def test_small_cnn_exact_sharded_over_devices():
    _compare("small_cnn", 32, 10, 11, mesh_devices=4)


@pytest.mark.slow
def test_resnet18_exact():
    _compare("resnet18", 64, 12, 13)


@pytest.mark.slow
def test_resnet50_exact():
    _compare("resnet50", 64, 20, 11)


@pytest.mark.slow
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_inception_v3_exact_both_pool_rules(count_include_pad):
    _compare(
        "inception_v3",
        75,
        15,
        20 if count_include_pad else 30,
        avg_pool_count_include_pad=count_include_pad,
    )


@pytest.mark.slow
def test_efficientnet_lite0_exact():
    _compare("efficientnet_lite0", 64, 12, 13)


@pytest.mark.parametrize(
    "arch, size",
    [("small_cnn", 64), ("resnet18", 96), ("efficientnet_lite0", 96), ("inception_v3", 96)],
)
def test_every_layer_before_pooling_is_incremental(arch, size):
    """No primitive falls back to the full tensor, and the FLOP bound is above 1."""
    model = models.create(arch, num_classes=4, in_channels=3, rngs=nnx.Rngs(0))
    predictor = Predictor(model, _PIXELS, make_mesh(1))
    apply, state = predictor.apply_fn, predictor.variables
    traced = incremental.IncrementalModel.trace(apply, state, (size, size, 3))
    origins = sweep.window_origins(size, 12, 4)
    stats = incremental.flop_bound(traced, state, origins, origins, 12)
    assert stats.fallbacks == {}
    assert stats.flop_bound > 1.1
    capped = incremental.flop_bound(traced, state, origins, origins, 12, tau=0.3)
    assert capped.flop_bound > stats.flop_bound


def test_window_axis_boxes_cover_the_receptive_field():
    """A 3x3/2 conv, pad 1: the patch of outputs covers every output the window reaches."""
    box = incremental.Axis(np.arange(0, 23, 1, dtype=np.int32), 6)  # windows 0..22 of 6 px
    out = incremental._window_axis(box, 14, 3, 2, 1, 1, None)
    for start, o0 in zip(box.starts, out.starts, strict=True):
        reached = {o for o in range(14) for t in range(3) if start <= 2 * o - 1 + t < start + 6}
        assert reached <= set(range(o0, o0 + out.size))
        assert 0 <= o0 <= 14 - out.size


def test_approximate_is_close_and_reports_itself():
    apply, state = _scaled_apply("small_cnn", 48)
    images = _images(48)
    mesh = make_mesh(1)
    exact = sweep.occlusion_sensitivity(
        apply,
        state,
        images,
        mesh=mesh,
        config=sweep.OcclusionConfig(window=12, stride=4, max_batch=64),
    )
    approx = sweep.occlusion_sensitivity(
        apply,
        state,
        images,
        mesh=mesh,
        config=sweep.OcclusionConfig(
            window=12, stride=4, max_batch=64, method="approximate", tau=0.6, drill_down=0.3
        ),
    )
    assert approx.drops.shape == exact.drops.shape
    assert not np.allclose(approx.drops, exact.drops, atol=1e-6), "approximation did nothing"
    from engine.occlusion import fidelity as heatmap_fidelity

    fidelity = heatmap_fidelity.compare(approx, exact)
    assert 0.0 <= fidelity.peak_agreement <= 1.0
    assert fidelity.ssim_mean > 0.5


def test_config_validation():
    with pytest.raises(ValueError, match="method"):
        sweep.OcclusionConfig(method="fast")
    with pytest.raises(ValueError, match="approximate"):
        sweep.OcclusionConfig(tau=0.5)
    with pytest.raises(ValueError, match="tau"):
        sweep.OcclusionConfig(method="approximate", tau=1.5)
    assert sweep.OcclusionConfig(method="approximate").approximation == (
        sweep.APPROXIMATE_TAU,
        sweep.APPROXIMATE_DRILL_DOWN,
    )
