"""``python -m launch.convert`` on ResNet state dicts: writes a loadable file, refuses a wrong
one."""

from __future__ import annotations

import numpy as np
import pytest

import models
from launch import convert as convert_cli
from models import weights_file
from tests.models.test_resnet import _monai_resnet, _save_both


@pytest.mark.foreign
def test_cli_converts_timm_resnet18_and_refuses_it_as_resnet50(tmp_path, capsys):
    pth, _ = _save_both(_monai_resnet("resnet18", seed=11), tmp_path, "resnet18")
    out = tmp_path / "resnet18_timm.npz"
    argv = ["--source=timm", "--arch=resnet18", f"--weights={pth}", f"--out={out}"]
    assert convert_cli.main(argv) == 0
    assert "resnet18.a1_in1k" in capsys.readouterr().out

    params, meta = weights_file.load(out)
    assert (meta.arch, meta.interpolation, meta.crop_fraction) == ("resnet18", "bicubic", 0.95)
    # Transfer-learning use: 4 classes, grey input; everything but the head comes from the file.
    net = models.create("resnet18", pretrained=out, num_classes=4, in_channels=1)
    flat = models.flat_state(net)
    assert flat["head/kernel"].shape == (512, 4)
    # Grey adaptation: RGB taps scaled by mean(std) / std_c, then summed (models.registry).
    std = np.asarray(meta.std, np.float32)
    folded = (params["stem/conv/kernel"] * (std.mean() / std)[None, None, :, None]).sum(
        2, keepdims=True
    )
    np.testing.assert_allclose(flat["stem/conv/kernel"], folded, rtol=1e-6)
    np.testing.assert_array_equal(flat["stage4/1/conv2/bn/var"], params["stage4/1/conv2/bn/var"])

    bad_out = tmp_path / "never.npz"
    argv = ["--source=torchvision", "--arch=resnet50", f"--weights={pth}", f"--out={bad_out}"]
    assert convert_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert str(pth) in err and "missing tensor" in err
    assert not bad_out.exists()
