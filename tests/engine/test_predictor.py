"""engine.predictor.Predictor: every path is the same forward, each example counted once."""

from __future__ import annotations

import numpy as np
from flax import nnx

import models
from data_pipelines.device import normalize
from data_pipelines.pipeline import make_eval_iterator
from data_pipelines.preprocess import PreprocessConfig, load_image
from data_pipelines.sources import open_dataset
from engine.inference import abstract_model
from engine.mesh import make_mesh
from engine.predictor import Predictor
from models.loading import flat_state, load_flat_state
from models.metadata import WeightMetadata

META = WeightMetadata(arch="small_cnn", num_classes=4, in_channels=1, mean=(0.4,), std=(0.3,))


def _model():
    return models.create("small_cnn", num_classes=4, in_channels=1, rngs=nnx.Rngs(3))


def test_iterator_host_images_and_occlusion_apply_agree_with_the_model():
    source = open_dataset("oct_sample", split="test")  # 32 images; batch 24 pads 16
    cfg = PreprocessConfig(input_size=32, channels=1)
    model = _model()
    predictor = Predictor(model, META, make_mesh(8))
    probs, index = predictor.predict(
        make_eval_iterator(source, cfg, global_batch_size=24, mesh=predictor.mesh)
    )
    assert index.tolist() == list(range(len(source)))  # each example once, in order
    split = Predictor.from_states(predictor.graphdef, (), META, predictor.mesh)
    again, _ = split.predict(  # the trainer's way: a split model, states passed per call
        make_eval_iterator(source, cfg, global_batch_size=24, mesh=predictor.mesh),
        variables=predictor.variables,
    )
    np.testing.assert_array_equal(again, probs)
    images = np.stack([load_image(source[i]["path"], cfg) for i in range(5)])
    direct = nnx.softmax(model(normalize(images, META.mean, META.std))[0], axis=-1)
    np.testing.assert_allclose(probs[:5], direct, atol=1e-5)
    np.testing.assert_allclose(predictor.probabilities(images), direct, atol=1e-5)
    logits = predictor.apply_fn(predictor.variables, images.astype(np.float32))  # pixel floats
    np.testing.assert_allclose(nnx.softmax(logits, axis=-1), direct, atol=1e-5)


def test_abstract_model_filled_from_weights_equals_the_concrete_one():
    concrete = _model()
    abstract = abstract_model(_model)
    load_flat_state(abstract, flat_state(concrete), source="test")
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    got = Predictor(abstract, META, make_mesh(1)).probabilities(images)
    want = Predictor(concrete, META, make_mesh(1)).probabilities(images)
    np.testing.assert_array_equal(got, want)
