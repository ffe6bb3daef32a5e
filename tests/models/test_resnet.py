"""ResNet family: topology (parameter counts), converter tables, parity against a torch ResNet.

The parity reference is MONAI's 2-D ResNet (torch only, no torchvision needed). Built with
``bias_downsample=False`` it has torchvision's exact state-dict names and shapes (MONAI's
default, ``bias_downsample=True``, adds a bias to every ``downsample.0`` conv that torchvision
does not have; everything else, v1.5 stride placement included, is torchvision's topology).
The tests assert that equality instead of assuming it.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

import models
from models import resnet, weights_file
from models.convert import convert_file, torch_resnet
from models.loading import WEIGHT_TYPES, path_to_key

# torchvision.models.resnetNN(num_classes=1000): sum(p.numel() for p in m.parameters())
TORCHVISION_PARAM_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
MONAI_LAYERS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}
STAGES = ("stem", "stage1", "stage2", "stage3", "stage4", "pre_logits")


def _abstract_state(arch: str) -> dict[str, tuple[int, ...]]:
    model = nnx.eval_shape(lambda: models.create(arch, rngs=nnx.Rngs(0)))
    state = nnx.state(model, WEIGHT_TYPES)
    return {path_to_key(p): tuple(v.shape) for p, v in nnx.to_flat_state(state)}


@pytest.mark.parametrize("arch", sorted(TORCHVISION_PARAM_COUNTS))
def test_parameter_count_matches_torchvision(arch):
    model = nnx.eval_shape(lambda: models.create(arch, rngs=nnx.Rngs(0)))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert count == TORCHVISION_PARAM_COUNTS[arch]


@pytest.mark.parametrize("arch", sorted(TORCHVISION_PARAM_COUNTS))
def test_name_map_covers_exactly_the_model(arch):
    flax_paths = [flax for flax, _ in torch_resnet.name_map(arch).values()]
    assert len(flax_paths) == len(set(flax_paths))
    assert set(flax_paths) == set(_abstract_state(arch))


def test_extras_strides_and_widths():
    net = models.create("resnet18", num_classes=5)
    net.eval()
    logits, extras = net(np.zeros((1, 65, 65, 3), np.float32))
    # 65 -> 7x7/2 pad 3: 33 -> max pool 3/2 pad 1: 17 -> 17, 9, 5, 3 (floor((n + 2 - 3) / 2) + 1)
    assert logits.shape == (1, 5)
    assert extras["stem"].shape == (1, 33, 33, 64)
    assert [extras[f"stage{i}"].shape[1:] for i in range(1, 5)] == [
        (17, 17, 64),
        (9, 9, 128),
        (5, 5, 256),
        (3, 3, 512),
    ]
    assert extras["pre_logits"].shape == (1, net.num_features) == (1, 512)


def _fake_state_dict(arch: str) -> dict[str, np.ndarray]:
    """Tensors of the right rank under every torch name of ``arch`` (values irrelevant)."""
    ranks = {"kernel": 4, "scale": 1, "bias": 1, "mean": 1, "var": 1}
    out = {}
    for torch_name, (flax_name, _) in torch_resnet.name_map(arch).items():
        rank = 2 if flax_name == "head/kernel" else ranks[flax_name.rsplit("/", 1)[1]]
        out[torch_name] = np.zeros((1,) * rank, np.float32)
    return out


def test_convert_refuses_tensors_the_arch_lacks():
    # Every resnet18 tensor name also exists in resnet34: only the leftovers betray the file.
    flat = _fake_state_dict("resnet34")
    with pytest.raises(ValueError, match=r"80 tensors that resnet18 does not have \(layer1\.2\."):
        torch_resnet.convert(flat, "resnet18")
    with pytest.raises(KeyError, match="layer1.0.conv3.weight"):
        torch_resnet.convert(_fake_state_dict("resnet18"), "resnet50")
    flat = _fake_state_dict("resnet18")
    flat["bn1.num_batches_tracked"] = np.zeros((), np.int64)
    assert set(torch_resnet.convert(flat, "resnet18")) == set(_abstract_state("resnet18"))


def test_metadata_per_source():
    tv = torch_resnet.metadata("resnet50", "torchvision")
    assert (tv.tag, tv.interpolation, tv.crop_fraction, tv.input_size) == (
        "resnet50.tv_in1k",
        "bilinear",
        0.875,
        224,
    )
    assert tv.license == "BSD-3-Clause" and tv.mean == (0.485, 0.456, 0.406)
    timm = torch_resnet.metadata("resnet101", "timm")
    assert (timm.tag, timm.interpolation, timm.crop_fraction) == (
        "resnet101.a1h_in1k",
        "bicubic",
        0.95,
    )
    assert torch_resnet.metadata("resnet18", "timm").tag == "resnet18.a1_in1k"
    assert len(tv.class_names) == 1000 and tv.class_names[0].startswith("tench")
    assert tv.classifier_paths == ("head",) and tv.first_conv_path == "stem/conv"


# ----------------------------------------------------------------------------- torch parity


def _monai_resnet(arch: str, seed: int):
    import torch
    from monai.networks.nets.resnet import ResNet, ResNetBlock, ResNetBottleneck

    torch.manual_seed(seed)
    block = ResNetBottleneck if arch == "resnet50" else ResNetBlock
    net = ResNet(
        block,
        list(MONAI_LAYERS[arch]),
        [64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=3,
        conv1_t_size=7,
        conv1_t_stride=2,
        shortcut_type="B",
        num_classes=1000,
        bias_downsample=False,
    )
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-trivial BatchNorm: random statistics and affine parameters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
    return net.eval()


def _torch_features(net, x_nhwc: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import torch

    feats: dict[str, np.ndarray] = {}
    taps = {
        "stem": net.act,
        **{f"stage{i}": getattr(net, f"layer{i}") for i in range(1, 5)},
        "pre_logits": net.avgpool,
    }

    def hook(name):
        def record(_module, _inputs, output):
            out = output.detach().clone().numpy()
            feats[name] = (
                out.reshape(out.shape[0], -1) if name == "pre_logits" else out.transpose(0, 2, 3, 1)
            )

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in taps.items()]
    with torch.no_grad():
        logits = net(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())).numpy()
    for h in handles:
        h.remove()
    return logits, feats


def _save_both(net, tmp_path, stem: str):
    import torch
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    pth, st = tmp_path / f"{stem}.pth", tmp_path / f"{stem}.safetensors"
    torch.save(state, pth)
    save_file(state, str(st))
    return pth, st


def _rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


@pytest.mark.foreign
@pytest.mark.parametrize("arch", [pytest.param("resnet50", marks=pytest.mark.slow), "resnet18"])
def test_parity_with_torch_resnet(arch, tmp_path):
    net = _monai_resnet(arch, seed=3)
    state_names = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    assert state_names == set(torch_resnet.name_map(arch)), "MONAI names differ from torchvision's"
    assert sum(p.numel() for p in net.parameters()) == TORCHVISION_PARAM_COUNTS[arch]

    # Even sizes at every stride-2 layer (96, 48, 24, 12, 6): there TF-style "SAME" padding
    # would pad (k-2)//2 before and one more after, so only PyTorch's symmetric padding matches.
    x = np.random.default_rng(0).normal(size=(2, 96, 96, 3)).astype(np.float32)
    ref_logits, ref_feats = _torch_features(net, x)

    pth, st = _save_both(net, tmp_path, arch)
    params, meta = convert_file("torchvision", arch, pth)
    params_st, _ = convert_file("torchvision", arch, st)
    assert set(params) == set(params_st)
    for key in params:
        np.testing.assert_array_equal(params[key], params_st[key], err_msg=key)

    ours = models.create(arch, pretrained=weights_file.save(tmp_path / f"{arch}.npz", params, meta))
    ours.eval()
    logits, extras = ours(x)
    assert _rel_err(logits, ref_logits) <= 1e-4
    for name in STAGES:
        assert extras[name].shape == ref_feats[name].shape, name
        assert _rel_err(extras[name], ref_feats[name]) <= 1e-4, name


@pytest.mark.foreign
def test_timm_source_same_tensors_other_preprocessing(tmp_path):
    net = _monai_resnet("resnet18", seed=5)
    pth, _ = _save_both(net, tmp_path, "r18")
    tv_params, tv_meta = convert_file("torchvision", "resnet18", pth)
    timm_params, timm_meta = convert_file("timm", "resnet18", pth)
    assert all(np.array_equal(tv_params[k], timm_params[k]) for k in tv_params)
    assert (tv_meta.interpolation, timm_meta.interpolation) == ("bilinear", "bicubic")


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def resnet18_files(tmp_path_factory):
    return _save_both(_monai_resnet("resnet18", seed=7), tmp_path_factory.mktemp("r18"), "resnet18")


@pytest.mark.foreign
@pytest.mark.parametrize("fmt", [0, 1], ids=["pth", "safetensors"])
def test_resnet18_file_refused_as_resnet50(resnet18_files, fmt):
    path = resnet18_files[fmt]
    with pytest.raises(models.WeightFileError, match=rf"{path.name}.*missing tensor.*conv3"):
        convert_file("torchvision", "resnet50", path)


@pytest.mark.foreign
def test_resnet34_file_refused_as_resnet18(tmp_path):
    pth, _ = _save_both(_monai_resnet("resnet34", seed=9), tmp_path, "resnet34")
    with pytest.raises(models.WeightFileError, match=r"resnet34\.pth.*does not have.*layer1\.2"):
        convert_file("torchvision", "resnet18", pth)


@pytest.mark.foreign
@pytest.mark.parametrize("fmt", [0, 1], ids=["pth", "safetensors"])
def test_truncated_file_refused(resnet18_files, fmt, tmp_path):
    src = resnet18_files[fmt]
    cut = tmp_path / f"cut{src.suffix}"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(models.WeightFileError, match=rf"{cut.name}.*(truncated|unreadable)"):
        convert_file("torchvision", "resnet18", cut)


def test_unknown_variant_and_source():
    with pytest.raises(ValueError, match="resnet26"):
        resnet.weight_metadata("resnet26", "torchvision")
    with pytest.raises(ValueError, match="keras"):
        resnet.weight_metadata("resnet50", "keras")
    with pytest.raises(TypeError, match="no model options"):
        models.create("resnet18", width=2)
