"""TFDS ArrayRecord preparation on a handful of real images, read back through the pipeline."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from data_pipelines.integrity import sha256_file
from data_pipelines.leakage import audit_splits
from data_pipelines.pipeline import make_eval_iterator
from data_pipelines.preprocess import PreprocessConfig
from data_pipelines.sources import open_dataset, open_splits
from launch import prepare


def test_prepare_oct_and_read_back_through_the_pipeline(make_tree, sample_files, tmp_path, mesh8):
    manual = make_tree(
        {
            f"{s}/{c}/{files[i].name}": files[i]
            for c, files in sample_files.items()
            for s, i in (("train", 0), ("train", 1), ("test", 2))
        }
    )
    data_dir = tmp_path / "built"
    assert (
        prepare.main(
            ["--dataset=oct", f"--manual_dir={manual}", f"--data_dir={data_dir}", "--short_side=64"]
        )
        == 0
    )
    raw = open_dataset("oct", data_dir=manual, split="train")
    built = open_dataset("oct", data_dir=data_dir, split="train")
    assert built.counts() == raw.counts() == {"CNV": 2, "DME": 2, "DRUSEN": 2, "NORMAL": 2}
    assert [(r.label, r.patient) for r in built.records] == [
        (r.label, r.patient) for r in raw.records
    ]
    # Stored pre-resized (shorter side 64), grey; hashes are the original files'.
    stored = Image.open(io.BytesIO(built[0]["image_bytes"]))
    assert min(stored.size) == 64 and stored.mode == "L"
    assert built.records[0].sha256 == sha256_file(raw.records[0].path)
    cfg = PreprocessConfig(input_size=48, channels=1)
    a = next(make_eval_iterator(built, cfg, global_batch_size=8, mesh=mesh8))
    b = next(make_eval_iterator(raw, cfg, global_batch_size=8, mesh=mesh8))
    assert np.array_equal(np.asarray(a["label"]), np.asarray(b["label"]))
    # Same pictures, up to one extra JPEG round trip and resampling order.
    assert np.abs(np.asarray(a["image"], float) - np.asarray(b["image"], float)).mean() < 6
    audits = audit_splits(open_splits("oct", data_dir=data_dir))
    assert [a.leaked for a in audits] == [False]


def test_chest_build_serves_the_pathogen_tasks(make_tree, shared_data, tmp_path):
    chest = shared_data / "chest_xray"
    pick = {
        "NORMAL": sorted((chest / "train/NORMAL").glob("*"))[:2],
        "PNEUMONIA": sorted((chest / "train/PNEUMONIA").glob("*bacteria*"))[:1]
        + sorted((chest / "train/PNEUMONIA").glob("*virus*"))[:2],
    }
    manual = make_tree(
        {
            f"{s}/{c}/{p.name}": p
            for c, files in pick.items()
            for p in files
            for s in ("train", "test")
        }
    )
    prepare.main(
        [
            "--dataset=chest_xray",
            f"--manual_dir={manual}",
            f"--data_dir={tmp_path / 'b'}",
            "--short_side=32",
            "--image_format=png",
        ]
    )
    pathogen = open_dataset("chest_xray_pathogen", data_dir=tmp_path / "b", split="test")
    assert pathogen.counts() == {"BACTERIAL": 1, "VIRAL": 2}
    three = open_dataset("chest_xray_3class", data_dir=tmp_path / "b", split="train")
    assert three.counts() == {"NORMAL": 2, "BACTERIAL": 1, "VIRAL": 2}
