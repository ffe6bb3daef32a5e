"""Bad input: each case a clear error naming the path and what was expected; skip lists files."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from data_pipelines.integrity import BadImageError
from data_pipelines.layout import DatasetLayoutError
from data_pipelines.pipeline import make_eval_iterator
from data_pipelines.preprocess import PreprocessConfig, load_image
from data_pipelines.sources import open_dataset


@pytest.fixture
def good_tree(make_tree, sample_files):
    return make_tree(
        {
            f"{s}/{c}/{files[i].name}": files[i]
            for c, files in sample_files.items()
            for s, i in (("train", 0), ("test", 1))
        }
    )


def _corrupt(real: bytes) -> bytes:
    """Starts like a JPEG and ends with its end marker, but the markers between are junk."""
    junk = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    return real[:2] + b"\xff\xc0\x00\x03" + junk + b"\xff\xd9"


def test_each_bad_file_is_named_with_its_problem(make_tree, good_tree, sample_files):
    real = sample_files["CNV"][3].read_bytes()
    cases = {
        "train/CNV/CNV-1-1.jpeg": (b"", "zero-byte"),
        "train/CNV/CNV-2-1.jpeg": (real[: len(real) // 2], "truncated JPEG"),
        "train/DME/notes.txt": (b"hello", "not an image file"),
        "train/DME/DME-3-1.jpeg": (b"GIF89a not really", "not a JPEG or PNG"),
    }
    for rel, (content, problem) in cases.items():
        make_tree({rel: content}, good_tree)
    with pytest.raises(BadImageError, match="4 bad file") as info:
        open_dataset("oct", data_dir=good_tree, split="train")
    for rel, (_, problem) in cases.items():
        assert f"{good_tree / rel}: {problem}" in str(info.value)


def test_skip_leaves_out_and_logs_every_bad_file(make_tree, good_tree, caplog):
    make_tree({"train/CNV/CNV-1-1.jpeg": b"", "train/NORMAL/x.bmp": b"BM"}, good_tree)
    with caplog.at_level(logging.WARNING):
        src = open_dataset("oct", data_dir=good_tree, split="train", on_bad_image="skip")
    assert len(src) == 4 and len(src.skipped) == 2
    for path, _ in src.skipped:
        assert path in caplog.text
    assert "skipped 2 bad image" in caplog.text


def test_corrupt_pixels_fail_at_decode_time_or_are_masked(
    make_tree, good_tree, sample_files, mesh8, caplog
):
    bad = good_tree / "test/DME/DME-5-1.jpeg"
    make_tree({"test/DME/DME-5-1.jpeg": _corrupt(sample_files["DME"][2].read_bytes())}, good_tree)
    cfg = PreprocessConfig(input_size=16, channels=1)
    with pytest.raises(BadImageError, match="DME-5-1.jpeg: cannot decode"):
        load_image(bad, cfg)
    strict = open_dataset("oct", data_dir=good_tree, split="test")  # passes the cheap checks
    with pytest.raises(Exception, match="DME-5-1.jpeg"):
        list(make_eval_iterator(strict, cfg, global_batch_size=8, mesh=mesh8))
    lenient = open_dataset("oct", data_dir=good_tree, split="test", on_bad_image="skip")
    with caplog.at_level(logging.WARNING):
        (batch,) = list(
            make_eval_iterator(lenient, cfg, global_batch_size=8, mesh=mesh8, threads=1)
        )
    bad_index = [r.path for r in lenient.records].index(str(bad))
    index, mask = np.asarray(batch["index"]), np.asarray(batch["mask"])
    flagged = np.asarray(batch["bad"])
    assert mask.sum() == 4 and bad_index not in index[mask]
    assert index[flagged].tolist() == [bad_index]  # keeps its real index, so it can be named
    assert not (mask & flagged).any() and (index >= 0).sum() == 5
    assert str(bad) in caplog.text


def test_skipped_images_are_named_and_excluded_from_the_count(
    make_tree, good_tree, sample_files, mesh8
):
    from engine.inference import SkippedImages

    bad = good_tree / "test/DME/DME-5-1.jpeg"
    make_tree({"test/DME/DME-5-1.jpeg": _corrupt(sample_files["DME"][2].read_bytes())}, good_tree)
    source = open_dataset("oct", data_dir=good_tree, split="test", on_bad_image="skip")
    cfg = PreprocessConfig(input_size=16, channels=1)
    batches = SkippedImages(make_eval_iterator(source, cfg, global_batch_size=8, mesh=mesh8))
    seen = [
        int(i) for b in batches for i, m in zip(np.asarray(b["index"]), np.asarray(b["mask"])) if m
    ]
    assert batches.paths(source.records) == [str(bad)]
    assert sorted(seen) == batches.expected(len(source)).tolist() and len(seen) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("empty", "holds no images"),
        ("unknown", "unknown class folder .*FOO; expected only CNV, DME, DRUSEN, NORMAL"),
        ("missing_split", "split folder .*test is missing"),
        ("wrong_root", "no split folder .*expected DIR/"),
        ("no_dir", "does not exist"),
    ],
)
def test_layout_errors_name_the_path_and_the_expected_layout(good_tree, change, message):
    data_dir = good_tree
    if change == "empty":
        for f in (good_tree / "test/DRUSEN").iterdir():
            f.unlink()
    elif change == "unknown":
        (good_tree / "test/FOO").mkdir()
    elif change == "missing_split":
        shutil.rmtree(good_tree / "test")
    elif change == "wrong_root":
        data_dir = good_tree / "train"
    else:
        data_dir = good_tree / "nowhere"
    with pytest.raises(DatasetLayoutError, match=message) as info:
        open_dataset("oct", data_dir=data_dir, split="test")
    assert str(good_tree) in str(info.value)


def test_pneumonia_file_without_pathogen(make_tree, shared_data):
    film = next((shared_data / "chest_xray/train/PNEUMONIA").glob("*.jpeg"))
    normal = next((shared_data / "chest_xray/train/NORMAL").glob("*.jpeg"))
    root = make_tree(
        {"train/PNEUMONIA/person1_fungus_1.jpeg": film, "train/NORMAL/IM-0001-0001.jpeg": normal}
    )
    with pytest.raises(BadImageError, match="person1_fungus_1.jpeg: pneumonia file name"):
        open_dataset("chest_xray_pathogen", data_dir=root, split="train")
    assert len(open_dataset("chest_xray", data_dir=root, split="train")) == 2


@pytest.mark.parametrize(
    ("dataset", "classes"),
    [("oct", "{CNV,DME,DRUSEN,NORMAL}"), ("chest_xray", "{NORMAL,PNEUMONIA}")],
)
def test_no_data_dir_says_where_to_get_the_archive(dataset, classes):
    with pytest.raises(DatasetLayoutError) as info:
        open_dataset(dataset, split="train")
    text = str(info.value)
    assert "doi:10.17632/rscbjbr9sj.2" in text and "kermany2018" in text
    assert classes in text and "--data_dir" in text
