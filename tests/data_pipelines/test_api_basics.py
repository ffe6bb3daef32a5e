"""The data-pipeline contract other helpers build on: sources, load_image, iterators, normalize."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from data_pipelines.device import normalize
from data_pipelines.pipeline import make_eval_iterator, make_train_iterator
from data_pipelines.preprocess import PreprocessConfig, load_image
from data_pipelines.sources import open_dataset


@pytest.fixture(scope="module")
def mesh() -> jax.sharding.Mesh:
    return jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def test_bundled_sample_opens_without_data_dir():
    train = open_dataset("oct_sample", split="train")
    test = open_dataset("oct_sample", split="test")
    assert train.class_names == ("CNV", "DME", "DRUSEN", "NORMAL")
    assert train.counts() == {"CNV": 12, "DME": 12, "DRUSEN": 12, "NORMAL": 12}
    assert test.counts() == {"CNV": 8, "DME": 8, "DRUSEN": 8, "NORMAL": 8}
    assert not train.patients() & test.patients()
    element = train[0]
    assert element["path"].endswith(".jpeg") and element["patient"] in element["path"]


def test_load_image_shape_and_dtype():
    src = open_dataset("oct_sample", split="test")
    for channels in (1, 3):
        img = load_image(src[0]["path"], PreprocessConfig(input_size=96, channels=channels))
        assert img.shape == (96, 96, channels) and img.dtype == np.uint8
        assert img.std() > 5  # real content, not a blank


def test_train_batches_are_global_and_sharded(mesh):
    src = open_dataset("oct_sample", split="train")
    it = make_train_iterator(
        src, PreprocessConfig(input_size=32, channels=1), global_batch_size=16, mesh=mesh, seed=0
    )
    batch = next(it)
    assert batch["image"].shape == (16, 32, 32, 1) and batch["image"].dtype == np.uint8
    assert batch["label"].dtype == np.int32 and bool(np.all(batch["mask"]))
    assert batch["image"].sharding.spec == jax.sharding.PartitionSpec("data")
    labels = np.asarray(batch["label"])
    index = np.asarray(batch["index"])
    assert [src[i]["label"] for i in index] == labels.tolist()


def test_eval_covers_every_example_once_with_padding(mesh):
    src = open_dataset("oct_sample", split="test")  # 32 examples, batches of 24 -> 16 padding
    batches = list(
        make_eval_iterator(
            src, PreprocessConfig(input_size=16, channels=1), global_batch_size=24, mesh=mesh
        )
    )
    index = np.concatenate([np.asarray(b["index"]) for b in batches])
    mask = np.concatenate([np.asarray(b["mask"]) for b in batches])
    assert len(batches) == 2
    assert sorted(index[mask].tolist()) == list(range(len(src)))
    assert np.all(index[~mask] == -1) and (~mask).sum() == 16


def test_normalize_matches_formula_under_jit():
    images = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    got = jax.jit(lambda x: normalize(x, mean, std))(images)
    want = (images / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="channel"):
        normalize(images, (0.5, 0.5), (0.5, 0.5))
