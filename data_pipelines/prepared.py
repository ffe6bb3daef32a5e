"""Reading TFDS ArrayRecord builds written by ``launch.prepare`` (``data_pipelines.tfds_build``).

``open_dataset`` reads a build when ``data_dir`` holds one, through the same per-example ops
and Grain pipeline as the image files: the stored (pre-resized, encoded) bytes replace the
path. The chest build serves "chest_xray", "chest_xray_pathogen" and "chest_xray_3class":
their labels are re-derived from the stored original file names. Finding a build reads only
``records.json``; TFDS is imported when pixels are first read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data_pipelines.datasets import LAYOUTS
from data_pipelines.integrity import BadImageError, report_skipped
from data_pipelines.records import ExampleRecord, ImageSource

BUILDS = {"oct": "kermany_oct", "chest_xray": "kermany_chest_xray"}
BUILD_OF = {
    "oct": "oct",
    "chest_xray": "chest_xray",
    "chest_xray_pathogen": "chest_xray",
    "chest_xray_3class": "chest_xray",
}
RECORDS_FILE = "records.json"


def find_build(name: str, data_dir: Path) -> Path | None:
    """The newest build folder for data set ``name`` under ``data_dir`` (one with records.json)."""
    build = BUILD_OF.get(name)
    if build is None:
        return None
    base = Path(data_dir) / BUILDS[build]
    if not base.is_dir():
        return None
    found = sorted(base.glob(f"*/*/{RECORDS_FILE}"))
    return found[-1].parent if found else None


def has_build(name: str, data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a ``launch.prepare`` build for ``name``."""
    return find_build(name, data_dir) is not None


class _BuildStore:
    """``store[key]`` -> the stored (pre-resized, encoded) image bytes; opened lazily so a
    pickled copy in a worker process opens its own reader."""

    def __init__(self, build_dir: Path, split: str):
        self.build_dir, self.split = str(build_dir), split
        self._source = None

    def __getstate__(self) -> dict[str, Any]:
        return {"build_dir": self.build_dir, "split": self.split, "_source": None}

    def __getitem__(self, key: int) -> dict[str, Any]:
        if self._source is None:
            import tensorflow_datasets as tfds  # heavy (TensorFlow): only when pixels are read

            builder = tfds.builder_from_directory(self.build_dir)
            self._source = builder.as_data_source(
                split=self.split, decoders={"image": tfds.decode.SkipDecoding()}
            )
        return {"image_bytes": bytes(self._source[key]["image"])}


def open_splits(
    name: str, data_dir: Path, *, on_bad_image: str = "error"
) -> dict[str, ImageSource]:
    """Every split of the build, labelled for data set ``name`` (e.g. pathogen from names)."""
    build_dir = find_build(name, data_dir)
    if build_dir is None:
        raise FileNotFoundError(f"no {name} build under {data_dir}; run python -m launch.prepare")
    layout = LAYOUTS[name]
    index = json.loads((build_dir / RECORDS_FILE).read_text())["splits"]
    splits = {}
    for split, rows in index.items():
        records, bad = [], []
        label_of = {c: i for i, c in enumerate(layout.class_names)}
        for key, (path, folder, patient, sha) in enumerate(rows):
            try:
                class_name = layout.class_of(Path(path), folder)
            except BadImageError as err:
                bad.append((err.path, err.problem))
                continue
            if class_name is not None:
                records.append(
                    ExampleRecord(
                        f"{build_dir}/{path}", label_of[class_name], patient, key=key, sha256=sha
                    )
                )
        if bad and on_bad_image == "error":
            raise BadImageError(bad[0][0], bad[0][1])
        report_skipped(bad, f"{name}/{split} build {build_dir}")
        splits[split] = ImageSource(
            name,
            split,
            layout.class_names,
            records,
            root=str(build_dir),
            store=_BuildStore(build_dir, split),
            on_bad_image=on_bad_image,
            skipped=bad,
        )
    return splits
