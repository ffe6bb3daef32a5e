"""open_dataset on the shared real images and small trees: labels, splits, limited sets,
synthetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from data_pipelines import synthetic
from data_pipelines.layout import DatasetLayoutError
from data_pipelines.sources import open_dataset

OCT_TRAIN = {"CNV": 149, "DME": 56, "DRUSEN": 35, "NORMAL": 150}


def test_real_counts_per_dataset(shared_data):
    def counts(name, split):
        return open_dataset(name, data_dir=shared_data, split=split).counts()

    assert counts("oct", "train") == OCT_TRAIN
    assert counts("oct", "test") == {"CNV": 45, "DME": 20, "DRUSEN": 12, "NORMAL": 50}
    assert counts("chest_xray", "train") == {"NORMAL": 80, "PNEUMONIA": 150}
    pathogen = counts("chest_xray_pathogen", "test")
    assert set(pathogen) == {"BACTERIAL", "VIRAL"} and sum(pathogen.values()) == 50
    three = counts("chest_xray_3class", "test")
    assert three["NORMAL"] == 25 and three["BACTERIAL"] == pathogen["BACTERIAL"]
    # The data set's own folder is found from the parent folder and from itself.
    assert len(open_dataset("oct", data_dir=shared_data / "oct", split="test")) == 127


def test_patient_level_val_split(shared_data):
    def split(s, seed=0):
        return open_dataset("oct", data_dir=shared_data, split=s, val_fraction=0.2, seed=seed)

    train, val, test = split("train"), split("val"), split("test")
    assert len(train) + len(val) == sum(OCT_TRAIN.values())
    assert not train.patients() & val.patients()
    assert not val.patients() & test.patients()
    assert all(n > 0 for n in val.counts().values())  # stratified: rare classes on both sides
    assert 0.1 < len(val.patients()) / (len(val.patients()) + len(train.patients())) < 0.3
    assert [r.path for r in split("val").records] == [r.path for r in val.records]
    assert [r.path for r in split("val", seed=1).records] != [r.path for r in val.records]


def test_max_per_class_draws_reproducibly(shared_data):
    def draw(seed):
        return open_dataset("oct", data_dir=shared_data, split="train", max_per_class=20, seed=seed)

    first = draw(0)
    assert first.counts() == {"CNV": 20, "DME": 20, "DRUSEN": 20, "NORMAL": 20}
    assert [r.path for r in draw(0).records] == [r.path for r in first.records]
    assert {r.path for r in draw(1).records} != {r.path for r in first.records}
    assert (
        open_dataset("oct", data_dir=shared_data, split="train", max_per_class=40).counts()[
            "DRUSEN"
        ]
        == 35
    )


def test_published_val_folder_and_missing_val(make_tree, sample_files):
    tree = {
        f"{s}/{c}/{p.name}": p
        for s in ("train", "test")
        for c, files in sample_files.items()
        for p in files[:2]
    }
    root = make_tree(tree)
    with pytest.raises(DatasetLayoutError, match="no val/ folder.*val_fraction"):
        open_dataset("oct", data_dir=root, split="val")
    make_tree({f"val/{c}/{files[5].name}": files[5] for c, files in sample_files.items()}, root)
    val = open_dataset("oct", data_dir=root, split="val")
    assert val.counts() == {"CNV": 1, "DME": 1, "DRUSEN": 1, "NORMAL": 1}


def test_generic_folder_tree(make_tree, sample_files):
    root = make_tree(
        {
            "train/zebra/a.jpeg": sample_files["CNV"][0],
            "train/apple/b.jpeg": sample_files["DME"][0],
            "test/zebra/c.jpeg": sample_files["CNV"][1],
        }
    )
    train = open_dataset("folder", data_dir=root, split="train")
    test = open_dataset("folder", data_dir=root, split="test")
    assert train.class_names == ("apple", "zebra")
    assert test.class_names == ("apple", "zebra") and test[0]["label"] == 1
    assert train[0]["patient"] == "b"


def test_drop_leaked_removes_from_train_only(make_tree, sample_files):
    cnv = sample_files["CNV"]
    test_file = cnv[0]
    patient = test_file.name.split("-")[1]
    root = make_tree(
        {
            **{
                f"{s}/{c}/{files[i].name}": files[i]
                for c, files in sample_files.items()
                for s, i in (("train", 1), ("test", 2))
            },
            f"test/CNV/{test_file.name}": test_file,
            "train/CNV/CNV-999-1.jpeg": test_file,  # same bytes, another name and patient
            f"train/DME/DME-{patient}-7.jpeg": sample_files["DME"][3],  # a test patient in train
        }
    )
    train = open_dataset("oct", data_dir=root, split="train", drop_leaked=True)
    test = open_dataset("oct", data_dir=root, split="test", drop_leaked=True)
    names = {r.path.rsplit("/", 1)[1] for r in train.records}
    assert "CNV-999-1.jpeg" not in names and f"DME-{patient}-7.jpeg" not in names
    assert len(train) == 4 and len(test) == 5


def test_synthetic_boxes_hold_exactly_the_lesion():
    src = open_dataset("synthetic", split="test", seed=3)
    assert src.counts() == {"CNV": 8, "DME": 8, "DRUSEN": 8, "NORMAL": 8}
    for p in synthetic.plans(3, "test"):
        image = synthetic.render(p)
        if p.lesion_box is None:
            continue
        background = synthetic.render(dataclasses.replace(p, label=3, lesion=()))
        changed = np.argwhere(image != background)
        y0, x0, y1, x1 = p.lesion_box
        assert len(changed) > 20
        assert changed[:, 0].min() >= y0 and changed[:, 0].max() < y1
        assert changed[:, 1].min() >= x0 and changed[:, 1].max() < x1


def test_synthetic_written_equals_in_memory(tmp_path):
    synthetic.write_synthetic(tmp_path, seed=5, per_class={"train": 2, "test": 1})
    on_disk = open_dataset("synthetic", data_dir=tmp_path, split="train", seed=5)
    in_memory = synthetic.synthetic_source("train", seed=5, per_class=2)
    assert len(on_disk) == len(in_memory) == 8
    by_name = {r.path.split(">/", 1)[1]: (r, in_memory[i]) for i, r in enumerate(in_memory.records)}
    for record in on_disk.records:
        expected, element = by_name[record.path[len(str(tmp_path)) + 1 :]]
        assert record.lesion_box == expected.lesion_box
        assert record.patient == expected.patient and record.label == expected.label
        assert np.array_equal(np.asarray(Image.open(record.path)), element["image"])


def test_archive_roots_are_found_below_data_dir(make_tree, sample_files, tmp_path):
    # The Kaggle OCT archive unpacks to "OCT2017 " (trailing space); Mendeley's to CellData/OCT.
    for i, prefix in enumerate(("OCT2017 ", "ZhangLabData/CellData/OCT")):
        parent = make_tree(
            {
                f"{prefix}/{s}/{c}/{files[0].name}": files[0]
                for c, files in sample_files.items()
                for s in ("train", "test")
            },
            tmp_path / f"archive{i}",
        )
        src = open_dataset("oct", data_dir=parent, split="test")
        assert len(src) == 4 and prefix.strip() in src.root
