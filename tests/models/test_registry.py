"""Registry, loading and weight-file contracts, on the small CNN (no foreign frameworks)."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

import models
from models import weights_file
from models.registry import adapt_first_conv


def _save_small(tmp_path, **meta_changes):
    net = models.create("small_cnn", num_classes=4, rngs=nnx.Rngs(1))
    meta = models.metadata_for("small_cnn").replace(tag="test", **meta_changes)
    path = weights_file.save(tmp_path / "small.npz", models.flat_state(net), meta)
    return net, path


def test_roundtrip_same_outputs(tmp_path):
    net, path = _save_small(tmp_path)
    net.eval()
    loaded = models.create("small_cnn", pretrained=path)
    loaded.eval()
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(net(x)[0], loaded(x)[0])


def test_extras_contract():
    net = models.create("small_cnn")
    logits, extras = net(np.zeros((2, 32, 32, 3), np.float32))
    assert logits.shape == (2, 4)
    assert {"stem", "stage1", "stage2", "pre_logits"} <= set(extras)
    assert extras["pre_logits"].shape == (2, net.num_features)


def test_new_class_count_reinitialises_only_classifier(tmp_path):
    net, path = _save_small(tmp_path)
    other = models.create("small_cnn", pretrained=path, num_classes=2, rngs=nnx.Rngs(7))
    a, b = models.flat_state(net), models.flat_state(other)
    assert b["head/kernel"].shape == (net.num_features, 2)
    np.testing.assert_array_equal(a["stem/conv/kernel"], b["stem/conv/kernel"])


def test_grey_input_adapted_conv_matches_replicated_rgb(tmp_path):
    net, path = _save_small(tmp_path)
    grey = models.create("small_cnn", pretrained=path, in_channels=1)
    net.eval(), grey.eval()
    g = np.random.default_rng(0).normal(size=(2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(net(np.repeat(g, 3, -1))[0], grey(g)[0], rtol=1e-5, atol=1e-5)
    assert models.metadata_for("small_cnn", in_channels=1).mean == (0.5,)


def test_grey_adaptation_exact_through_normalisation_with_unequal_stds(tmp_path):
    """Equal channel means, unequal stds: the grey network on grey-normalised pixels equals
    the RGB network on per-channel-normalised replicated pixels."""
    from data_pipelines.device import normalize

    std = (0.2, 0.25, 0.3)
    net, path = _save_small(tmp_path, mean=(0.5, 0.5, 0.5), std=std)
    grey = models.create("small_cnn", pretrained=path, in_channels=1)
    net.eval(), grey.eval()
    grey_meta = models.metadata_for("small_cnn", path, in_channels=1)
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 1), dtype=np.uint8)
    rgb_in = normalize(np.repeat(pixels, 3, -1), (0.5, 0.5, 0.5), std)
    grey_in = normalize(pixels, grey_meta.mean, grey_meta.std)
    np.testing.assert_allclose(net(rgb_in)[0], grey(grey_in)[0], rtol=1e-4, atol=1e-4)


def test_adapt_first_conv_other_counts():
    k = np.ones((3, 3, 3, 8), np.float32)
    assert adapt_first_conv(k, 1).shape == (3, 3, 1, 8)
    six = adapt_first_conv(k, 6)
    assert six.shape == (3, 3, 6, 8) and np.isclose(six.sum(), k.sum())


def test_wrong_architecture_refused(tmp_path):
    _, path = _save_small(tmp_path, arch="resnet18")
    with pytest.raises(models.WeightFileError, match="resnet18"):
        models.create("small_cnn", pretrained=path)


def test_mismatch_lists_every_difference():
    net = models.create("small_cnn")
    flat = models.flat_state(net)
    flat["extra/kernel"] = np.zeros(3)
    del flat["stem/bn/mean"]
    flat["head/bias"] = np.zeros(99)
    with pytest.raises(models.WeightMismatchError) as err:
        models.load_flat_state(net, flat, source="unit")
    text = str(err.value)
    assert "extra/kernel" in text and "stem/bn/mean" in text and "head/bias" in text


@pytest.mark.parametrize("damage", ["truncate", "empty", "foreign_npz", "pickle"])
def test_bad_weight_files_refused(tmp_path, damage):
    _, path = _save_small(tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "foreign_npz":
        np.savez(path.open("wb"), w=np.zeros(3))
    else:
        np.save(path.open("wb"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(models.WeightFileError, match=str(path.name)):
        weights_file.load(path)


def test_unknown_model_and_tag():
    with pytest.raises(ValueError, match="unknown model"):
        models.create("nope")
    with pytest.raises(FileNotFoundError, match="registered tag"):
        models.create("small_cnn", pretrained="no_such_tag")
