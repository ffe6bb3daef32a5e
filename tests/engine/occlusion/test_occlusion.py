"""engine.occlusion.sweep tested for meaning (STYLE lesson 15), not shape."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.preprocess import CentreCrop
from engine.mesh import make_mesh
from engine.occlusion import sweep
from engine.occlusion.sweep import OcclusionConfig
from engine.predictor import Predictor
from models.metadata import WeightMetadata


def constant_model(variables, x):
    del variables
    return jnp.broadcast_to(jnp.array([1.0, 2.0, 0.5]), (x.shape[0], 3)) + 0.0 * x.mean()


PATCH = (8, 12, 6)  # y0, x0, side: the only pixels the planted model looks at


def planted_patch_model(variables, x):
    """Logit of class 1 = scale * mean of the planted patch; class 0 fixed at 0."""
    y0, x0, side = PATCH
    evidence = x[:, y0 : y0 + side, x0 : x0 + side, :].mean(axis=(1, 2, 3))
    return jnp.stack([jnp.zeros_like(evidence), variables["scale"] * evidence], axis=1)


def tiny_cnn_params(seed=0, channels=2, classes=3):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {
        "conv": jax.random.normal(k1, (3, 3, channels, 8)) * 0.5,
        "dense": jax.random.normal(k2, (8, classes)),
    }


def tiny_cnn(params, x):
    y = jax.lax.conv_general_dilated(
        x,
        params["conv"],
        (1, 1),
        "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    pooled = jax.nn.relu(y).max(axis=(1, 2))  # max-pool: location-sensitive
    return jnp.dot(pooled, params["dense"], precision=jax.lax.Precision.HIGHEST)


def naive_loop(apply_fn, variables, images, window, stride, fill_value=0.0):
    """Reference: one occluded image per forward, occlusion done in numpy."""
    forward = jax.jit(lambda v, x: jax.nn.softmax(apply_fn(v, x), axis=-1))
    h, w = images.shape[1:3]
    ys = range(0, h - window + 1, stride)
    xs = range(0, w - window + 1, stride)
    out = np.zeros((len(images), len(ys), len(xs)))
    for n, image in enumerate(images):
        base = np.asarray(forward(variables, image[None]))[0]
        target = int(np.argmax(base))
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                copy = image.copy()
                copy[y : y + window, x : x + window] = fill_value
                out[n, i, j] = base[target] - np.asarray(forward(variables, copy[None]))[0, target]
    return out


@pytest.fixture(scope="module")
def random_images():
    return np.random.default_rng(0).random((3, 16, 20, 2)).astype(np.float32)


def test_window_origins_count_matches_the_paper_cost_table():
    assert len(sweep.window_origins(299, 20, 4)) ** 2 == 4900
    assert len(sweep.window_origins(299, 20, 10)) ** 2 == 784
    assert len(sweep.window_origins(299, 20, 1)) ** 2 == 78400
    with pytest.raises(ValueError, match="larger than"):
        sweep.window_origins(10, 20, 4)


@pytest.mark.parametrize("fill", sweep.FILLS)
def test_constant_model_gives_zero_map(fill, random_images):
    cfg = OcclusionConfig(window=6, stride=3, fill=fill, max_batch=32)
    result = sweep.occlusion_sensitivity(constant_model, None, random_images, config=cfg)
    assert result.drops.shape == (3, 4, 5)
    np.testing.assert_array_equal(result.drops, 0.0)
    np.testing.assert_array_equal(result.targets, 1)


@pytest.mark.parametrize("fill", ["mean", "blur"])
def test_fill_that_changes_nothing_gives_zero_map(fill):
    """On a flat image, the mean and the blur equal the image: occluding it changes nothing."""
    flat = np.full((2, 16, 16, 1), 0.7, np.float32)
    result = sweep.occlusion_sensitivity(
        tiny_cnn,
        tiny_cnn_params(channels=1),
        flat,
        config=OcclusionConfig(window=5, stride=2, fill=fill),
    )
    np.testing.assert_allclose(result.drops, 0.0, atol=1e-6)


def test_planted_patch_gives_largest_drop_exactly_there_and_nowhere_else():
    y0, x0, side = PATCH
    images = np.zeros((2, 24, 30, 1), np.float32)
    images[:, y0 : y0 + side, x0 : x0 + side] = 1.0
    images[1] += 0.3  # a brighter background must not matter: the model ignores it
    cfg = OcclusionConfig(window=side, stride=2, fill="zero", max_batch=40)
    result = sweep.occlusion_sensitivity(
        planted_patch_model, {"scale": jnp.float32(8.0)}, images, config=cfg
    )
    np.testing.assert_array_equal(result.targets, 1)
    np.testing.assert_array_equal(result.peak_boxes(), [[y0, x0, y0 + side, x0 + side]] * 2)
    for n in range(2):
        d = result.drops[n]
        overlaps = (
            (result.ys[:, None] + side > y0)
            & (result.ys[:, None] < y0 + side)
            & (result.xs[None, :] + side > x0)
            & (result.xs[None, :] < x0 + side)
        )
        assert np.all(d[overlaps] > 0) and np.all(d[~overlaps] == 0)
        assert np.sum(d == d.max()) == 1
        pixel_map = result.pixel_maps()[n]
        assert pixel_map.shape == (24, 30)
        iy, ix = np.unravel_index(np.argmax(pixel_map), pixel_map.shape)
        assert y0 <= iy < y0 + side and x0 <= ix < x0 + side
    boxes = np.array([[y0, x0, y0 + side, x0 + side], [0, 0, 4, 4]])
    assert sweep.lesion_hits(result, boxes, "centre").tolist() == [True, False]
    assert sweep.lesion_hits(result, boxes, "overlap").tolist() == [True, False]


def test_identical_to_naive_loop_over_single_occluded_images(random_images):
    params = tiny_cnn_params()
    cfg = OcclusionConfig(window=5, stride=3, fill="zero", max_batch=24)
    batched = sweep.occlusion_sensitivity(tiny_cnn, params, random_images, config=cfg)
    reference = naive_loop(tiny_cnn, params, random_images, window=5, stride=3)
    assert np.abs(reference).max() > 1e-3  # the model does react to occlusion
    np.testing.assert_allclose(batched.drops, reference, atol=2e-6)


def test_independent_of_chunk_size_and_device_count(random_images):
    params = tiny_cnn_params(seed=1)
    assert jax.device_count() == 8
    results = []
    for max_batch, devices in [(8, 8), (24, 8), (1000, 8), (7, 1), (64, 1)]:
        cfg = OcclusionConfig(window=4, stride=2, fill="blur", max_batch=max_batch)
        results.append(
            sweep.occlusion_sensitivity(
                tiny_cnn, params, random_images, config=cfg, mesh=make_mesh(devices)
            ).drops
        )
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], atol=1e-6)


def test_label_targets_and_progress(random_images):
    params = tiny_cnn_params(seed=2)
    seen = []
    labels = np.array([2, 0, 1])
    result = sweep.occlusion_sensitivity(
        tiny_cnn,
        params,
        random_images,
        targets=labels,
        config=OcclusionConfig(window=6, stride=5, max_batch=16),
        progress=lambda d, t: seen.append((d, t)),
    )
    np.testing.assert_array_equal(result.targets, labels)
    assert seen[-1] == (3 * 3 * 3, 27) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(ValueError, match="class indices"):
        sweep.occlusion_sensitivity(
            tiny_cnn,
            params,
            random_images,
            targets=np.array([0, 1, 3]),
            config=OcclusionConfig(window=6, stride=5, max_batch=16),
        )


def test_pixel_map_averages_covering_windows():
    result = sweep.OcclusionResult(
        probabilities=np.zeros((1, 2)),
        targets=np.zeros(1, np.int32),
        drops=np.array([[[1.0, 3.0]]]),
        ys=np.array([0]),
        xs=np.array([0, 2]),
        window=3,
        image_shape=(4, 6),
    )
    # windows cover rows 0-2 and columns 0-2 (drop 1) and 2-4 (drop 3): column 2 averages both;
    # uncovered column 5 and row 3 take the nearest window (centres at columns 1 and 3; ties: first)
    covered = [1.0, 1.0, 2.0, 3.0, 3.0, 3.0]
    np.testing.assert_allclose(
        result.pixel_maps()[0], [covered] * 3 + [[1.0, 1.0, 1.0, 3.0, 3.0, 3.0]]
    )


def test_pixel_map_fills_gaps_when_stride_exceeds_window():
    result = sweep.OcclusionResult(
        probabilities=np.zeros((1, 2)),
        targets=np.zeros(1, np.int32),
        drops=np.array([[[1.0, 5.0]]]),
        ys=np.array([0]),
        xs=np.array([0, 5]),
        window=2,
        image_shape=(2, 7),
    )
    # windows at columns 0-1 and 5-6; the gap 2-4 takes the nearest centre (0.5 or 5.5; ties: first)
    np.testing.assert_allclose(result.pixel_maps()[0], [[1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0]] * 2)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="fill"):
        OcclusionConfig(fill="noise")
    with pytest.raises(ValueError, match=">= 1"):
        OcclusionConfig(stride=0)


def test_box_mapping_follows_the_evaluation_preprocessing():
    from data_pipelines.preprocess import PreprocessConfig, load_image

    image = np.zeros((120, 200), np.uint8)
    image[30:70, 90:150] = 255  # y0, x0, y1, x1 = 30, 90, 70, 150
    cfg = PreprocessConfig(input_size=48, crop_fraction=0.8, channels=1, interpolation="nearest")
    prepared = load_image(image, cfg)[..., 0]
    ys, xs = np.nonzero(prepared > 127)
    mapped = CentreCrop.of((120, 200), cfg).to_input((30, 90, 70, 150))
    np.testing.assert_allclose(mapped, [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1], atol=1.0)
    assert CentreCrop((120, 200), 48, 60).to_input((0, 0, 5, 5)).tolist() == [
        -1,
        -1,
        -1,
        -1,
    ]


def test_small_network_trained_on_synthetic_lesions_points_at_them():
    """Train small_cnn (plain optax, ~200 steps) on planted lesions; its heatmaps find them."""
    import optax
    from flax import nnx

    import models
    from data_pipelines.preprocess import PreprocessConfig, load_image
    from data_pipelines.synthetic import synthetic_source

    cfg = PreprocessConfig(input_size=64, crop_fraction=1.0, channels=1)

    def arrays(split, per_class):
        src = synthetic_source(split, seed=0, per_class=per_class)
        images = np.stack([load_image(src[i]["image"], cfg) for i in range(len(src))])
        labels = np.array([r.label for r in src.records])
        return images, labels, src.records

    train_x, train_y, _ = arrays("train", 32)
    test_x, test_y, records = arrays("test", 6)
    model = models.create("small_cnn", num_classes=4, in_channels=1, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss_fn(model):
            logits, _ = model((x / 255.0 - 0.5) / 0.25)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    rng = np.random.default_rng(0)
    model.train()
    for _ in range(200):
        batch = rng.choice(len(train_x), 32, replace=False)
        step(model, optimizer, train_x[batch].astype(np.float32), train_y[batch])

    predictor = Predictor(model, WeightMetadata(arch="test", mean=(0.5,), std=(0.25,)), make_mesh())
    apply_fn, state = predictor.apply_fn, predictor.variables
    result = sweep.occlusion_sensitivity(
        apply_fn,
        state,
        test_x,
        targets=test_y,
        config=OcclusionConfig(window=12, stride=4, fill="mean", max_batch=256),
    )
    assert np.mean(np.argmax(result.probabilities, axis=1) == test_y) >= 0.9  # it learned the task
    boxes = np.stack(
        [
            CentreCrop((128, 160), 64, cfg.resize_size).to_input(r.lesion_box)
            if r.lesion_box
            else np.full(4, -1.0)
            for r in records
        ]
    )
    with_lesion = boxes[:, 0] >= 0
    assert with_lesion.sum() == 18  # CNV, DME and DRUSEN images; NORMAL has none
    hits = sweep.lesion_hits(result, boxes, "overlap")[with_lesion]
    assert hits.mean() >= 0.85, f"largest drop on the lesion in only {hits.mean():.0%} of images"
