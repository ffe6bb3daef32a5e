"""launch.evaluate, launch.occlusion and launch.predict --workdir on one tiny trained run.

The run: small_cnn at 32 px trained for a few steps on a written synthetic set (planted
lesions with boxes.json), so every command sees real checkpoints and real files.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_pipelines.synthetic import write_synthetic
from engine.reports.overlay import MAX_OVERLAY_SIDE, overlay_on_original_png
from launch import evaluate, occlusion, predict, train

PER_CLASS_TEST = 3  # 12 test images: a padded last batch at batch 8


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_run")
    data = write_synthetic(root / "data", per_class={"train": 8, "test": PER_CLASS_TEST})
    workdir = root / "run"
    code = train.main(
        [
            "--dataset=synthetic",
            f"--data_dir={data}",
            "--model=small_cnn",
            "--transfer=scratch",
            "--in_channels=1",
            "--input_size=32",
            "--steps=6",
            "--batch_size=8",
            "--val_fraction=0.25",
            "--eval_every=3",
            f"--workdir={workdir}",
            "--devices=8",
            "--no-progress",
            "--final_split=none",
        ]
    )
    assert code == 0
    return workdir, data


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_counts_every_image_once_whatever_the_device_count(trained_run, tmp_path, capsys):
    workdir, data = trained_run
    outs = {}
    for name, devices in (("d8", 8), ("d1", 1), ("d8_again", 8)):
        out = tmp_path / name
        code = evaluate.main(
            [
                f"--workdir={workdir}",
                f"--out={out}",
                f"--devices={devices}",
                "--batch_size=8",
                "--bootstrap=50",
            ]
        )
        assert code == 0, capsys.readouterr().err
        outs[name] = out
    doc = json.loads((outs["d8"] / "report.json").read_text())
    n = 4 * PER_CLASS_TEST
    assert doc["n_images"] == n and doc["provenance"]["images"] == n
    assert doc["provenance"]["model"] == "small_cnn" and doc["provenance"]["split"] == "test"
    assert "git_commit" in doc["provenance"] and doc["provenance"]["dataset"] == "synthetic"
    for key in (
        "accuracy",
        "weighted_error",
        "urgent_referral/sensitivity",
        "urgent_referral/auc",
        "per_class/DRUSEN/specificity",
    ):
        assert set(doc["metrics"][key]) == {"value", "ci95"}
    rows8, rows1 = (
        _read_csv(outs["d8"] / "predictions.csv"),
        _read_csv(outs["d1"] / "predictions.csv"),
    )
    assert len(rows8) == n and len({r["path"] for r in rows8}) == n
    assert sorted(r["path"] for r in rows8) == sorted(
        str(p) for p in (data / "test").rglob("*.png")
    )
    for a, b in zip(rows8, rows1):
        assert (
            a["path"] == b["path"] and a["label"] == b["label"] and a["referral"] == b["referral"]
        )
        for c in ("CNV", "DME", "DRUSEN", "NORMAL"):
            assert float(a[f"p_{c}"]) == pytest.approx(float(b[f"p_{c}"]), abs=1e-5)
    page = (outs["d8"] / "report.html").read_text()
    assert "paper, full model" in page and '<img src="data:image/png;base64,' in page
    # the same evaluation again: every file (report.json, predictions.csv, report.html, the
    # chart PNGs) byte for byte the same
    files = sorted(p.name for p in outs["d8"].iterdir())
    assert files == sorted(p.name for p in outs["d8_again"].iterdir())
    assert "roc_per_class.png" in files
    for name in files:
        assert (outs["d8"] / name).read_bytes() == (outs["d8_again"] / name).read_bytes(), name


def test_evaluate_reports_a_missing_run(tmp_path, capsys):
    assert evaluate.main([f"--workdir={tmp_path}"]) == 1
    assert "config.json" in capsys.readouterr().err


def test_evaluate_writes_null_for_a_run_without_data_dir(tmp_path, capsys):
    """An in-memory synthetic run has no data_dir: report.json says null, not "None"."""
    workdir = tmp_path / "run"
    assert (
        train.main(
            [
                "--dataset=synthetic",
                "--model=small_cnn",
                "--transfer=scratch",
                "--in_channels=1",
                "--input_size=32",
                "--steps=1",
                "--batch_size=8",
                "--val_fraction=0.25",
                f"--workdir={workdir}",
                "--devices=1",
                "--no-progress",
                "--final_split=none",
            ]
        )
        == 0
    )
    assert (
        evaluate.main([f"--workdir={workdir}", "--split=val", "--bootstrap=10", "--devices=1"]) == 0
    ), capsys.readouterr().err
    doc = json.loads((workdir / "eval" / "val" / "report.json").read_text())
    assert doc["provenance"]["data_dir"] is None and doc["provenance"]["split"] == "val"


def test_occlusion_writes_heatmaps_overlays_and_lesion_check(trained_run, tmp_path, capsys):
    workdir, data = trained_run
    images = tmp_path / "images"
    shutil.copytree(data / "test", images / "test")
    shutil.copy(data / "boxes.json", images / "boxes.json")
    (images / "test" / "CNV" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "occ"
    code = occlusion.main(
        [
            f"--workdir={workdir}",
            f"--images={images / 'test'}",
            "--window=8",
            "--stride=4",
            "--target=label",
            "--max_batch=64",
            f"--out={out}",
            "--devices=8",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1 and "broken.png" in captured.err  # reported by name, the rest still done
    n = 4 * PER_CLASS_TEST
    with np.load(out / "heatmaps.npz", allow_pickle=False) as z:
        assert z["drops"].shape == (n, 7, 7) and z["maps"].shape == (n, 32, 32)
        assert z["probabilities"].shape == (n, 4)
        np.testing.assert_array_equal(z["targets"], z["labels"])  # --target=label
        assert not any("broken" in p for p in z["paths"])
        first = str(z["paths"][0])
        assert (z["lesion_boxes"][:, 0] >= 0).sum() == 3 * PER_CLASS_TEST  # NORMAL has no lesion
    pngs = sorted((out / "overlays").glob("*.png"))
    assert len(pngs) == n
    with Image.open(pngs[0]) as png, Image.open(first) as original:
        w, h = original.size  # drawn on the original (not the 32 px model input)
        assert png.size == (2 * w + 4, h) and max(w, h) > 32
    assert (out / "index.html").read_text().count("<img") == n
    summary = json.loads((out / "summary.json").read_text())
    check = summary["lesion_check"]
    assert check["images_with_lesion"] == 3 * PER_CLASS_TEST
    assert 0 <= check["overlap"]["hits"] <= check["images_with_lesion"]
    assert "lesion check" in captured.out


def test_occlusion_approximate_reports_its_fidelity_and_full_equals_incremental(
    trained_run, tmp_path, capsys
):
    workdir, data = trained_run
    common = [
        f"--workdir={workdir}",
        f"--images={data / 'test' / 'CNV'}",
        "--window=8",
        "--stride=4",
        "--max_batch=64",
        "--no_overlays",
        "--devices=2",
    ]
    drops = {}
    for method in ("full", "incremental", "approximate"):
        out = tmp_path / method
        extra = ["--tau=0.5", "--drill_down=0.3"] if method == "approximate" else []
        assert occlusion.main([*common, f"--method={method}", *extra, f"--out={out}"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["method"] == method
        with np.load(out / "heatmaps.npz", allow_pickle=False) as z:
            drops[method] = z["drops"]
    np.testing.assert_allclose(drops["incremental"], drops["full"], atol=1e-5)
    assert summary["tau"] == 0.5 and summary["drill_down"] == 0.3
    fidelity = summary["fidelity"]
    assert fidelity["images"] == PER_CLASS_TEST and 0 <= fidelity["peak_agreement"] <= 1
    assert "SSIM" in capsys.readouterr().out
    assert occlusion.main([*common, "--tau=0.5", f"--out={tmp_path / 'bad'}"]) == 1


@pytest.mark.parametrize("hw", [(200, 300), (1600, 2400)])
def test_overlay_on_original_puts_the_heat_on_the_patch(tmp_path, hw):
    """Heat planted at model-input pixels lands on the matching original pixels (crop mapped
    back: 0.8 crop fraction, wide image); large originals are downscaled to MAX_OVERLAY_SIDE."""
    h, w = hw
    input_size, resize_size = 32, 40
    side = min(h, w) * input_size / resize_size
    top, left, per_px = (h - side) / 2, (w - side) / 2, side / input_size
    heat = np.zeros((input_size, input_size))
    heat[8:16, 20:28] = 1.0
    png = overlay_on_original_png(
        tmp_path / "o.png",
        np.full((h, w), 100, np.uint8),
        heat,
        input_size=input_size,
        resize_size=resize_size,
    )
    f = min(1.0, MAX_OVERLAY_SIDE / max(h, w))
    dh, dw = round(h * f), round(w * f)
    with Image.open(png) as img:
        assert img.size == (2 * dw + 4, dh)
        right = np.asarray(img.convert("RGB"))[:, dw + 4 :].astype(int)
    hot = np.argwhere(right[..., 0] > 180)  # yellow over grey; the rest is grey or darkened
    want = (
        np.array([top + 8 * per_px, left + 20 * per_px, top + 16 * per_px, left + 28 * per_px]) * f
    )
    got = np.array([*hot.min(axis=0), *(hot.max(axis=0) + 1)])
    np.testing.assert_allclose(got, want, atol=1.5)
    assert (right[: int(top * f) - 1] == 100).all()  # above the crop: untouched original


@pytest.mark.parametrize("text", ["{not json", '{"seed": 0}', '{"boxes": {"a.png": [1, 2]}}'])
def test_malformed_boxes_file_named_in_the_error(tmp_path, capsys, trained_run, text):
    workdir, data = trained_run
    bad = tmp_path / "boxes.json"
    bad.write_text(text)
    args = [
        f"--workdir={workdir}",
        f"--images={data / 'test' / 'DME'}",
        f"--boxes={bad}",
        f"--out={tmp_path / 'o'}",
        "--window=16",
        "--stride=16",
    ]
    assert occlusion.main(args) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "boxes" in err


def test_occlusion_refuses_a_multi_process_start(tmp_path, capsys, monkeypatch):
    import jax

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    args = [f"--workdir={tmp_path}", f"--images={tmp_path}", f"--out={tmp_path / 'o'}"]
    assert occlusion.main(args) == 2
    assert "one process" in capsys.readouterr().err


def test_predict_workdir_mode(trained_run, tmp_path, capsys):
    workdir, data = trained_run
    (tmp_path / "broken.jpeg").write_bytes(b"\xff\xd8\xffgarbage")
    out = tmp_path / "pred.csv"
    code = predict.main(
        [
            f"--workdir={workdir}",
            str(data / "test" / "DME"),
            str(tmp_path / "broken.jpeg"),
            f"--out={out}",
            "--heatmaps",
            f"--heatmaps_dir={tmp_path / 'maps'}",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1 and "broken.jpeg" in captured.err
    rows = _read_csv(out)
    assert len(rows) == PER_CLASS_TEST and all(r["label"] == "DME" for r in rows)
    for r in rows:  # synthetic names follow the OCT rule CLASS-PATIENT-N
        assert r["patient"] and r["patient"] == Path(r["path"]).stem.split("-")[1]
    for r in rows:
        expected = {"CNV": "urgent", "DME": "urgent", "DRUSEN": "routine", "NORMAL": "observation"}
        assert r["referral"] == expected[r["prediction"]]
    with np.load(tmp_path / "maps" / "heatmaps.npz", allow_pickle=False) as z:
        assert z["drops"].shape[0] == PER_CLASS_TEST


def test_predict_bare_heatmaps_flag_before_images_and_top_k_refused(trained_run, capsys):
    """``--heatmaps a.png b.png``: both are images; the maps go to <workdir>/heatmaps."""
    workdir, data = trained_run
    images = sorted((data / "test" / "CNV").glob("*.png"))[:2]
    code = predict.main([f"--workdir={workdir}", "--heatmaps", *map(str, images)])
    assert code == 0, capsys.readouterr().err
    with np.load(workdir / "heatmaps" / "heatmaps.npz", allow_pickle=False) as z:
        assert sorted(z["paths"]) == sorted(map(str, images))
    assert predict.main([f"--workdir={workdir}", "--top_k=2", str(images[0])]) == 2
    assert "--top_k" in capsys.readouterr().err


def test_evaluate_names_and_leaves_out_an_undecodable_image(trained_run, tmp_path, capsys):
    """--on_bad_image=skip: a file that fails only at decode time is named, not counted."""
    from data_pipelines.sources import BUNDLED_OCT_SAMPLE

    workdir, data = trained_run
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    real = min(BUNDLED_OCT_SAMPLE.rglob("*.jpeg")).read_bytes()
    junk = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    victim = min((copy / "test").rglob("*.png"))
    victim.write_bytes(
        real[:2] + b"\xff\xc0\x00\x03" + junk + b"\xff\xd9"
    )  # JPEG header, junk body
    out = tmp_path / "out"
    code = evaluate.main(
        [
            f"--workdir={workdir}",
            f"--data_dir={copy}",
            "--on_bad_image=skip",
            f"--out={out}",
            "--batch_size=8",
            "--bootstrap=20",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    doc = json.loads((out / "report.json").read_text())
    assert doc["provenance"]["images"] == 4 * PER_CLASS_TEST - 1
    assert any(str(victim) in line for line in doc["provenance"]["skipped_files"])
    assert str(victim) not in {r["path"] for r in _read_csv(out / "predictions.csv")}


def test_predict_names_a_decompression_bomb_and_predicts_the_others(trained_run, tmp_path, capsys):
    """A 30,000 x 30,000 PNG among the images: reported by name, the rest still predicted."""
    from tests.sample_images import bomb_png

    workdir, data = trained_run
    bomb = bomb_png(tmp_path / "bomb.png")
    out = tmp_path / "pred.csv"
    code = predict.main(
        [f"--workdir={workdir}", str(data / "test" / "CNV"), str(bomb), f"--out={out}"]
    )
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if "bomb.png" in line]
    assert len(lines) == 1 and "over the limit" in lines[0] and "Traceback" not in err
    assert len(_read_csv(out)) == PER_CLASS_TEST
