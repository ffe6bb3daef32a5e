"""Inception-V3: topology, small inputs, the aux head, and converter parity with Keras and torch.

References (float32, random weights, randomised BatchNorm statistics):
- Keras 3 on the JAX backend, ``keras.applications.InceptionV3(weights=None)``, saved in the
  legacy HDF5 layout of the published ImageNet file and as a Keras 3 ``.weights.h5``; both
  converted with ``convert_file("keras", ...)``; logits, ``pre_logits`` and all eleven mixed
  blocks compared (relative error <= 1e-4).
- torchvision's ``Inception3`` topology in torch (``tests/models/inception_torch_reference.py``,
  a transcription with torchvision's names: torchvision itself does not install beside this
  torch), saved with ``torch.save`` and converted with ``--source=torchvision`` / ``timm``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

import models
from launch import convert as convert_cli
from models import inception_v3, weights_file
from models.convert import convert_file, keras_inception_v3, torch_inception_v3
from models.loading import WEIGHT_TYPES, load_flat_state, path_to_key

KERAS_SIZE = 107  # grids 11, 5, 2: every block sees borders, and the last 3x3 convs see >1 pixel
TORCH_SIZE = 75  # the smallest input Inception-V3 takes
MIXED = tuple(name for blocks in inception_v3.STAGE_BLOCKS.values() for name, _ in blocks)
TOL = 1e-4
# torchvision.models.inception_v3(aux_logits=True / False): sum(p.numel() for p in parameters())
TORCHVISION_PARAMS = {True: 27_161_264, False: 23_834_568}


def rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def _abstract_state(**kwargs) -> dict[str, tuple[int, ...]]:
    model = nnx.eval_shape(lambda: models.create("inception_v3", rngs=nnx.Rngs(0), **kwargs))
    state = nnx.state(model, WEIGHT_TYPES)
    return {path_to_key(p): tuple(v.shape) for p, v in nnx.to_flat_state(state)}


# ----------------------------------------------------------------------------- topology


@pytest.mark.parametrize("aux", [True, False])
def test_parameter_count_matches_torchvision(aux):
    model = nnx.eval_shape(lambda: models.create("inception_v3", aux_logits=aux))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert count == TORCHVISION_PARAMS[aux]


def test_registered_metadata_points_at_real_parameters():
    meta = models.metadata_for("inception_v3")
    assert (meta.input_size, meta.mean, meta.std) == (299, (0.5,) * 3, (0.5,) * 3)
    for source in inception_v3.WEIGHT_SETS:
        wmeta = inception_v3.weight_metadata(source)
        shapes = _abstract_state(**wmeta.model_kwargs)
        assert shapes[wmeta.first_conv_path + "/kernel"] == (3, 3, 3, 32)
        for prefix in wmeta.classifier_paths:
            assert shapes[prefix + "/kernel"][-1] == 1000, (source, prefix)
        assert ("aux_head/fc" in wmeta.classifier_paths) == wmeta.model_kwargs["aux_logits"]


@pytest.mark.slow  # the first concrete Inception-V3 of the process: ~100 XLA compiles
def test_smallest_input_and_aux_head_in_train_mode():
    net = models.create("inception_v3", num_classes=3, aux_logits=True, rngs=nnx.Rngs(0))
    net.train()
    x = np.random.default_rng(0).normal(size=(2, TORCH_SIZE, TORCH_SIZE, 3)).astype(np.float32)
    before = np.asarray(net.stem.conv_1a.bn.mean[...]).copy()
    logits, extras = net(x)
    assert logits.shape == (2, 3) and extras["aux_logits"].shape == (2, 3)
    assert extras["stem"].shape == (2, 7, 7, 192)
    assert extras["stage1"].shape == (2, 7, 7, 288)
    assert extras["stage2"].shape == (2, 3, 3, 768)
    assert extras["stage3"].shape == (2, 1, 1, 2048) and extras["pre_logits"].shape == (2, 2048)
    assert np.isfinite(logits).all() and np.isfinite(extras["aux_logits"]).all()
    assert not np.allclose(before, net.stem.conv_1a.bn.mean[...])  # batch statistics were used
    with pytest.raises(ValueError, match="at least 75x75"):
        net(x[:, :74, :74])


def test_grey_input_adapts_first_conv(tmp_path):
    net = models.create("inception_v3", rngs=nnx.Rngs(1))
    path = weights_file.save(
        tmp_path / "w.npz", models.flat_state(net), inception_v3.weight_metadata("keras")
    )
    grey = models.create("inception_v3", pretrained=path, in_channels=1, num_classes=4)
    assert grey.stem.conv_1a.conv.kernel.shape == (3, 3, 1, 32)
    np.testing.assert_allclose(
        grey.stem.conv_1a.conv.kernel[...],
        net.stem.conv_1a.conv.kernel[...].sum(axis=2, keepdims=True),
        rtol=1e-6,
    )
    assert grey.head.kernel.shape == (2048, 4)


def test_converter_tables_cover_exactly_the_model():
    keras_paths = list(keras_inception_v3.name_map("inception_v3"))
    assert set(keras_paths) == set(_abstract_state())
    order = keras_inception_v3.keras_conv_order()
    assert len(order) == len(set(order)) == 94
    for source in torch_inception_v3.SOURCES:
        flax_paths = [f for f, _ in torch_inception_v3.name_map("inception_v3", source).values()]
        kwargs = inception_v3.weight_metadata(source).model_kwargs
        assert len(flax_paths) == len(set(flax_paths))
        assert set(flax_paths) == set(_abstract_state(**kwargs)), source


# ----------------------------------------------------------------------------- Keras parity


@dataclasses.dataclass
class KerasReference:
    legacy_h5: Path
    keras3_h5: Path
    conv_creation_order: list[int]  # creation index of each Conv2D, in Keras' layer order
    x: np.ndarray
    outputs: dict[str, np.ndarray]  # ours-named: mixed_5b.., pre_logits, logits


@pytest.fixture(scope="module")
def keras_reference(tmp_path_factory) -> KerasReference:
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    net = keras.applications.InceptionV3(
        weights=None, input_shape=(KERAS_SIZE, KERAS_SIZE, 3), classifier_activation=None
    )
    rng = np.random.default_rng(0)
    for layer in net.layers:  # BatchNorm: random beta, moving mean and variance
        if isinstance(layer, keras.layers.BatchNormalization):
            beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.normal(0, 0.2, beta.shape),
                    rng.normal(0, 0.2, mean.shape),
                    rng.uniform(0.5, 2.0, var.shape),
                ]
            )
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    out = tmp_path_factory.mktemp("keras_inception")
    legacy = out / "inception_v3_legacy.h5"
    with h5py.File(legacy, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, net)
    keras3 = out / "inception_v3.weights.h5"
    net.save_weights(keras3)

    conv_names = [layer.name for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    suffixes = [0 if name == "conv2d" else int(name.rsplit("_", 1)[1]) for name in conv_names]
    creation = [s - min(suffixes) for s in suffixes]

    keras_names = [f"mixed{i}" for i in range(len(MIXED))] + ["avg_pool"]
    probe = keras.Model(net.input, [net.get_layer(n).output for n in keras_names] + [net.output])
    x = rng.normal(size=(2, KERAS_SIZE, KERAS_SIZE, 3)).astype(np.float32)
    values = [np.asarray(v) for v in probe.predict(x, verbose=0)]
    outputs = dict(zip((*MIXED, "pre_logits", "logits"), values, strict=True))
    return KerasReference(legacy, keras3, creation, x, outputs)


@pytest.mark.foreign
@pytest.mark.slow
def test_keras_layer_order_is_replayed(keras_reference):
    ours_creation = {}
    for path in [f"stem/{c}" for c in inception_v3.STEM_CONVS]:
        ours_creation[path] = len(ours_creation)
    for stage, blocks in inception_v3.STAGE_BLOCKS.items():
        for i, (_, block) in enumerate(blocks):
            for branch in block.BRANCHES:
                for step in branch:
                    for conv in step:
                        ours_creation[f"{stage}/{i}/{conv}"] = len(ours_creation)
    replayed = [ours_creation[p] for p in keras_inception_v3.keras_conv_order()]
    assert replayed == keras_reference.conv_creation_order


@pytest.mark.foreign
@pytest.mark.slow
@pytest.mark.parametrize("layout", ["legacy", "keras3"])
def test_keras_parity(keras_reference, layout, tmp_path, capsys):
    """Converted with ``python -m launch.convert``, loaded with ``create(pretrained=...)``."""
    ref = keras_reference
    h5 = ref.legacy_h5 if layout == "legacy" else ref.keras3_h5
    out = tmp_path / "inception_v3_keras.npz"
    argv = ["--source=keras", "--arch=inception_v3", f"--weights={h5}", f"--out={out}"]
    assert convert_cli.main(argv) == 0
    assert "inception_v3.keras_in1k" in capsys.readouterr().out
    _, meta = weights_file.load(out)
    assert meta.model_kwargs == {"avg_pool_count_include_pad": False, "aux_logits": False}
    assert len(meta.class_names) == 1000 and meta.first_conv_path == "stem/conv_1a/conv"
    net = models.create("inception_v3", pretrained=out)
    net.eval()
    logits, extras = net(ref.x)
    errors = {name: rel_err(extras[name], ref.outputs[name]) for name in (*MIXED, "pre_logits")}
    errors["logits"] = rel_err(logits, ref.outputs["logits"])
    assert max(errors.values()) <= TOL, errors
    np.testing.assert_array_equal(extras["stage3"], extras["mixed_7c"])


@pytest.mark.foreign
@pytest.mark.slow
def test_keras_layouts_convert_identically_and_pad_rule_matters(keras_reference):
    legacy, _ = convert_file("keras", "inception_v3", keras_reference.legacy_h5)
    keras3, _ = convert_file("keras", "inception_v3", keras_reference.keras3_h5)
    assert legacy.keys() == keras3.keys()
    for key in legacy:
        np.testing.assert_array_equal(legacy[key], keras3[key], err_msg=key)
    np.testing.assert_array_equal(legacy["stage1/0/branch1x1/bn/scale"], 1.0)  # no gamma
    # The same weights under torchvision's pooling rule miss Keras by far more than TOL.
    net = models.create("inception_v3", avg_pool_count_include_pad=True)
    load_flat_state(net, legacy, source="keras legacy")
    net.eval()
    _, extras = net(keras_reference.x)
    assert rel_err(extras["mixed_5b"], keras_reference.outputs["mixed_5b"]) > 100 * TOL


@pytest.mark.foreign
@pytest.mark.slow
def test_keras_notop_file_refused_with_reason(keras_reference, tmp_path):
    import h5py

    notop = tmp_path / "inception_v3_notop.h5"
    notop.write_bytes(keras_reference.legacy_h5.read_bytes())
    with h5py.File(notop, "r+") as f:  # what include_top=False writes: no 'predictions' layer
        f.attrs["layer_names"] = [n for n in f.attrs["layer_names"] if n != "predictions"]
        del f["predictions"]
    with pytest.raises(models.WeightFileError, match=r"inception_v3_notop\.h5.*include_top=False"):
        convert_file("keras", "inception_v3", notop)


@pytest.fixture(scope="module")
def wrong_keras_files(tmp_path_factory) -> dict[str, Path]:
    """A small Keras CNN in both layouts, and damaged files."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    out = tmp_path_factory.mktemp("keras_wrong")
    small = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    files = {"other_legacy": out / "small.h5", "other_keras3": out / "small.weights.h5"}
    with h5py.File(files["other_legacy"], "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, small)
    small.save_weights(files["other_keras3"])
    data = files["other_legacy"].read_bytes()
    files["truncated"] = out / "truncated.h5"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["not_hdf5"] = out / "not_hdf5.h5"
    files["not_hdf5"].write_bytes(b"this is not an HDF5 file\n" * 10)
    files["empty"] = out / "empty.h5"
    files["empty"].write_bytes(b"")
    files["missing"] = out / "missing.h5"
    files["plain_hdf5"] = out / "plain.h5"
    with h5py.File(files["plain_hdf5"], "w") as f:
        f["x"] = np.zeros(3)
    return files


@pytest.mark.foreign
@pytest.mark.parametrize(
    "which",
    ["other_legacy", "other_keras3", "truncated", "not_hdf5", "empty", "missing", "plain_hdf5"],
)
def test_bad_keras_files_refused(wrong_keras_files, which):
    path = wrong_keras_files[which]
    with pytest.raises(models.WeightFileError, match=path.name):
        convert_file("keras", "inception_v3", path)


# ----------------------------------------------------------------------------- torch parity


@pytest.fixture(scope="module")
def torch_reference(tmp_path_factory):
    import torch

    from tests.models.inception_torch_reference import Inception3

    torch.manual_seed(0)
    net = Inception3(aux_logits=True)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
            elif isinstance(module, torch.nn.Conv2d):  # He scale keeps activations O(1)
                fan_in = module.weight[0].numel()
                module.weight.normal_(0, (2.0 / fan_in) ** 0.5)
    net.eval()
    path = tmp_path_factory.mktemp("torch_inception") / "inception_v3_tv.pth"
    torch.save(net.state_dict(), path)
    return net, path


@pytest.mark.foreign
def test_torchvision_parity_with_aux_head(torch_reference):
    import torch

    ref, path = torch_reference
    params, meta = convert_file("torchvision", "inception_v3", path)
    assert meta.model_kwargs == {"avg_pool_count_include_pad": True, "aux_logits": True}
    assert meta.classifier_paths == ("head", "aux_head/fc")
    net = models.create("inception_v3", **meta.model_kwargs)
    load_flat_state(net, params, source=str(path))
    net.eval()

    x = np.random.default_rng(1).normal(size=(2, TORCH_SIZE, TORCH_SIZE, 3)).astype(np.float32)
    with torch.no_grad():
        ref_logits, ref_features = ref(torch.from_numpy(x).permute(0, 3, 1, 2))
    logits, extras = net(x)
    errors = {"logits": rel_err(logits, ref_logits.numpy())}
    for ours, theirs in zip(MIXED, ref.BLOCKS, strict=True):
        errors[ours] = rel_err(extras[ours], ref_features[theirs].permute(0, 2, 3, 1).numpy())
    assert max(errors.values()) <= TOL, errors

    # The aux head on the 17x17x768 map it gets at 299 px, where torchvision's head runs.
    grid = np.random.default_rng(2).normal(size=(2, 17, 17, 768)).astype(np.float32)
    with torch.no_grad():
        ref_aux = ref.AuxLogits(torch.from_numpy(grid).permute(0, 3, 1, 2)).numpy()
    assert rel_err(net.aux_head(grid), ref_aux) <= TOL


@pytest.mark.foreign
def test_timm_source_drops_aux_and_agrees(torch_reference, tmp_path):
    import torch

    ref, path = torch_reference
    tv, _ = convert_file("torchvision", "inception_v3", path)
    timm, meta = convert_file("timm", "inception_v3", path)
    assert meta.model_kwargs["aux_logits"] is False and meta.interpolation == "bicubic"
    assert set(timm) == {k for k in tv if not k.startswith("aux_head/")}
    for key in timm:
        np.testing.assert_array_equal(timm[key], tv[key], err_msg=key)

    # Without AuxLogits: timm converts it, torchvision (whose files always have it) refuses.
    no_aux = tmp_path / "no_aux.pth"
    torch.save(
        {k: v for k, v in ref.state_dict().items() if not k.startswith("AuxLogits.")}, no_aux
    )
    assert set(convert_file("timm", "inception_v3", no_aux)[0]) == set(timm)
    with pytest.raises(models.WeightFileError, match=r"no_aux\.pth.*AuxLogits"):
        convert_file("torchvision", "inception_v3", no_aux)


@pytest.mark.foreign
def test_torch_file_for_another_network_refused(torch_reference, tmp_path):
    import torch

    ref, _ = torch_reference
    state = ref.state_dict()
    extra = tmp_path / "extra_block.pth"
    torch.save({**state, "Mixed_8a.branch1x1.conv.weight": torch.zeros(1)}, extra)
    with pytest.raises(models.WeightFileError, match=r"extra_block\.pth.*Mixed_8a"):
        convert_file("torchvision", "inception_v3", extra)
    reshaped = tmp_path / "reshaped.pth"
    torch.save({**state, "fc.weight": torch.zeros(10, 2048), "fc.bias": torch.zeros(10)}, reshaped)
    # 10 classes: converts, but the converter's own check against a 1000-class model refuses.
    with pytest.raises(models.WeightFileError, match=r"reshaped\.pth"):
        convert_file("torchvision", "inception_v3", reshaped)
