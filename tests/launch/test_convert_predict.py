"""``launch.convert`` and ``launch.predict --pretrained`` end to end, and every bad input refused.

Foreign tests convert the real EfficientNet-Lite0 ``.pth`` (torch reads it) and classify
scikit-image's ``chelsea.png``; the others run on a small CNN weight file and generated images,
so the CLIs are also proven in the jax-only environment.
"""

from __future__ import annotations

import csv
import os
import pickle
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

import models
from engine import pretrained
from launch import convert, predict
from models import weights_file
from models.convert import efficientnet_lite as lite_source

REPO_ROOT = Path(__file__).resolve().parents[2]
CAT_CLASSES = range(281, 286)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _convert_error(
    capsys,
    weights: Path,
    *extra: str,
    source="efficientnet_lite",
    arch="efficientnet_lite0",
    out: Path | None = None,
) -> str:
    out = out or weights.with_suffix(".npz")
    rc = convert.main(
        [f"--source={source}", f"--arch={arch}", f"--weights={weights}", f"--out={out}", *extra]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert not out.exists(), "nothing may be written for a refused file"
    errors = [line for line in _lines(err) if line.startswith("launch.convert: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err  # (torch may add a warning line)
    assert str(weights) in errors[0], err
    return errors[0]


@pytest.fixture(scope="module")
def lite_npz(tmp_path_factory) -> Path:
    """The real EfficientNet-Lite0 weights converted by the CLI (foreign: torch reads them)."""
    out = tmp_path_factory.mktemp("convert") / "lite0.npz"
    rc = convert.main(
        [
            "--source=efficientnet_lite",
            "--arch=efficientnet_lite0",
            f"--weights={lite_source.installed_weights_path()}",
            f"--out={out}",
        ]
    )
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory) -> Path:
    net = models.create("small_cnn", num_classes=4, rngs=nnx.Rngs(0))
    meta = models.metadata_for("small_cnn").replace(tag="test", class_names=("a", "b", "c", "d"))
    path = tmp_path_factory.mktemp("small") / "small.npz"
    return weights_file.save(path, models.flat_state(net), meta)


@pytest.fixture
def not_an_image(tmp_path) -> Path:
    path = tmp_path / "notes.jpg"
    path.write_text("this is text, not a JPEG\n")
    return path


# --- the real network, end to end -------------------------------------------------------------


@pytest.mark.foreign
def test_convert_then_predict_chelsea(lite_npz, tmp_path, capsys, not_an_image):
    from tests.sample_images import chelsea as sample_image

    params, meta = weights_file.load(lite_npz)
    assert meta.arch == "efficientnet_lite0" and len(meta.class_names) == 1000
    assert len(params) == 247
    chelsea, out = sample_image(), tmp_path / "pred.csv"
    rc = predict.main(
        [f"--pretrained={lite_npz}", "--top_k=5", f"--out={out}", str(chelsea), str(not_an_image)]
    )
    captured = capsys.readouterr()
    assert rc == 1  # one unreadable image, the other still classified
    assert str(not_an_image) in captured.err and "not a readable image" in captured.err
    with open(out, newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["path", "rank", "class_index", "class_name", "probability"]
        rows = list(reader)
    assert [r[0] for r in rows] == [str(chelsea)] * 5
    assert [int(r[1]) for r in rows] == [1, 2, 3, 4, 5]
    probs = [float(r[4]) for r in rows]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5
    assert int(rows[0][2]) in CAT_CLASSES
    assert [r[3] for r in rows] == [meta.class_names[int(r[2])] for r in rows]
    assert meta.class_names[int(rows[0][2])] in captured.out


@pytest.mark.foreign
def test_convert_overrides_preprocessing(tmp_path, capsys):
    out = tmp_path / "o.npz"
    rc = convert.main(
        [
            "--source=efficientnet_lite",
            "--arch=efficientnet_lite0",
            f"--weights={lite_source.installed_weights_path()}",
            f"--out={out}",
            "--input_size=256",
            "--crop_fraction=1.0",
            "--interpolation=bilinear",
            "--mean=0.485,0.456,0.406",
            "--std=0.229,0.224,0.225",
        ]
    )
    assert rc == 0 and "4,694,024 values" in capsys.readouterr().out
    meta = weights_file.load(out)[1]
    assert (meta.input_size, meta.crop_fraction, meta.interpolation) == (256, 1.0, "bilinear")
    assert meta.mean == (0.485, 0.456, 0.406) and meta.std == (0.229, 0.224, 0.225)


# --- bad weight files for launch.convert --------------------------------------------------------


@pytest.mark.foreign
def test_truncated_pth_refused(tmp_path, capsys):
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(lite_source.installed_weights_path().read_bytes()[:500_000])
    err = _convert_error(capsys, bad)
    assert "truncated" in err or "unreadable" in err


def test_zero_byte_file_refused(tmp_path, capsys):
    bad = tmp_path / "empty.pth"
    bad.write_bytes(b"")
    assert "empty" in _convert_error(capsys, bad)


class _RunsCode:
    """A pickle payload that would run a shell command if unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.foreign
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickle_carrying_code_refused_and_not_run(tmp_path, capsys, writer):
    import torch

    marker = tmp_path / "MARKER"
    bad = tmp_path / "evil.pth"
    payload = {"_conv_stem.weight": torch.zeros(32, 3, 3, 3), "evil": _RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, bad)
    else:
        bad.write_bytes(pickle.dumps(payload))
    err = _convert_error(capsys, bad)
    assert "refused" in err or "unreadable" in err
    assert not marker.exists(), "the pickled command ran"


@pytest.mark.foreign
def test_state_dict_of_another_architecture_refused(tmp_path, capsys):
    import torch

    resnet_like = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "bn1.weight": torch.ones(64),
        "fc.weight": torch.zeros(1000, 512),
        "fc.bias": torch.zeros(1000),
    }
    bad = tmp_path / "resnet18.pth"
    torch.save(resnet_like, bad)
    assert "another architecture" in _convert_error(capsys, bad)


@pytest.mark.foreign
def test_extra_tensors_refused(tmp_path, capsys):
    """e.g. EfficientNet-B0 (squeeze-excite) weights: they hold tensors Lite0 does not have."""
    import torch

    state = torch.load(lite_source.installed_weights_path(), map_location="cpu", weights_only=True)
    state["_blocks.0._se_reduce.weight"] = torch.zeros(8, 32, 1, 1)
    bad = tmp_path / "with_se.pth"
    torch.save(state, bad)
    assert "_se_reduce" in _convert_error(capsys, bad)


def test_unknown_source_and_unsupported_arch_refused(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    assert "unknown --source" in _convert_error(capsys, weights, source="caffe")
    assert "resnet50" in _convert_error(capsys, weights, arch="resnet50")


def test_convert_cli_error_has_no_traceback(tmp_path):
    bad = tmp_path / "empty.pth"
    bad.write_bytes(b"")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.convert",
            "--source=efficientnet_lite",
            "--arch=efficientnet_lite0",
            f"--weights={bad}",
            f"--out={tmp_path / 'o.npz'}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and str(bad) in proc.stderr


# --- launch.predict on a small network (no foreign framework) -----------------------------------


def _write_png(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_predict_small_network_and_bad_images(small_npz, tmp_path, capsys, not_an_image):
    good = [_write_png(tmp_path / f"img{i}.png", i) for i in range(3)]
    missing = tmp_path / "missing.png"
    out = tmp_path / "p.csv"
    rc = predict.main(
        [
            f"--pretrained={small_npz}",
            "--top_k=9",
            f"--out={out}",
            str(good[0]),
            str(not_an_image),
            str(good[1]),
            str(missing),
            str(good[2]),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert str(not_an_image) in err and str(missing) in err
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "rank", "class_index", "class_name", "probability"]
    # top_k is capped at the 4 classes; each image's probabilities sum to one
    assert [r["path"] for r in rows] == [str(p) for p in good for _ in range(4)]
    for p in good:
        mine = [r for r in rows if r["path"] == str(p)]
        assert sorted(r["class_name"] for r in mine) == ["a", "b", "c", "d"]
        assert abs(sum(float(r["probability"]) for r in mine) - 1) < 1e-4


def test_predict_matches_direct_model_call(small_npz, tmp_path, capsys):
    """The CLI feeds the network exactly the metadata's preprocessing (batch padding included)."""
    image = _write_png(tmp_path / "x.png", 7)
    meta = weights_file.load(small_npz)[1]
    net = models.create("small_cnn", pretrained=small_npz)
    net.eval()
    want = np.asarray(jax.nn.softmax(net(pretrained.prepare_image(image, meta)[None])[0]))[0]
    preds, errors = pretrained.classify(net, meta, [image], top_k=4)
    assert not errors
    got = dict(zip(preds[0].class_indices, preds[0].probabilities))
    np.testing.assert_allclose([got[i] for i in range(4)], want, rtol=1e-5, atol=1e-6)
    capsys.readouterr()


def test_predict_weights_for_another_architecture_refused(small_npz, tmp_path, capsys):
    image = _write_png(tmp_path / "x.png", 0)
    rc = predict.main([f"--pretrained={small_npz}", "--arch=efficientnet_lite0", str(image)])
    err = capsys.readouterr().err
    assert rc == 1 and str(small_npz) in err and "small_cnn" in err
    # A small CNN file that claims to be EfficientNet-Lite0: every mismatch listed, refused.
    params, meta = weights_file.load(small_npz)
    liar = weights_file.save(
        tmp_path / "liar.npz", params, meta.replace(arch="efficientnet_lite0", num_classes=4)
    )
    rc = predict.main([f"--pretrained={liar}", str(image)])
    err = capsys.readouterr().err
    assert rc == 1 and str(liar) in err and "keys only in the file" in err
    assert len(_lines(err)) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip"])
def test_predict_unreadable_weight_file_refused(tmp_path, capsys, content):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    rc = predict.main([f"--pretrained={bad}", str(_write_png(tmp_path / "x.png", 0))])
    err = capsys.readouterr().err
    assert rc == 1 and str(bad) in err
