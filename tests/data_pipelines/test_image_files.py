"""Command-line image files as a data source (data_pipelines.image_files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_pipelines.image_files import open_image_files
from data_pipelines.synthetic import CLASS_NAMES, read_boxes, write_synthetic


def test_files_take_labels_from_folders_and_boxes_from_the_set(tmp_path):
    data = write_synthetic(tmp_path / "data", per_class={"test": 1})
    loose = tmp_path / "loose.png"
    shutil.copy(min((data / "test" / "CNV").glob("*.png")), loose)
    files = open_image_files([data / "test", str(loose)], CLASS_NAMES)
    assert len(files) == len(CLASS_NAMES) + 1 and not files.errors
    assert files.paths[-1] == str(loose) and files.labels[-1] == -1  # no class folder
    named = [CLASS_NAMES.index(p.split("/")[-2]) for p in files.paths[:-1]]
    np.testing.assert_array_equal(files.labels[:-1], named)
    assert files.boxes_file == data / "boxes.json"
    boxes = read_boxes(data / "boxes.json")
    rel = [Path(p).relative_to(data).as_posix() for p in files.paths[:-1]]
    assert files.lesion_boxes[:-1] == [boxes[k] for k in rel]
    for path, hw in zip(files.paths, files.original_hw, strict=True):
        with Image.open(path) as img:
            assert hw == (img.height, img.width)
    with pytest.raises(ValueError, match="loose.png: parent folder"):
        open_image_files([str(loose)], CLASS_NAMES, strict_labels=True)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        open_image_files([str(tmp_path / "nothing-here")], CLASS_NAMES)
