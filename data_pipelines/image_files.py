"""Image files named on a command line as a data source (``launch.occlusion``, ``launch.predict``).

Turns ``DIR``, ``GLOB`` and ``FILE`` arguments into a sorted file list and an
:class:`~data_pipelines.records.ImageSource` read through the same eval iterator as every data
set (``data_pipelines.pipeline.make_eval_iterator``): pixels are decoded once, in batches, never
all held in one host array. Files that are not images (suffix, empty, truncated, over the
pixel limit) are left out when the source is opened and named in ``skipped``; a file that
fails only at decode time arrives masked (``on_bad_image="skip"``, see
``engine.inference.SkippedImages``). Labels come from the parent folder when it is a class
name; lesion boxes from a ``boxes.json`` written by ``data_pipelines.synthetic``.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from data_pipelines.integrity import IMAGE_SUFFIXES, header_size, image_file_problem
from data_pipelines.naming import patient_of
from data_pipelines.preprocess import CentreCrop, PreprocessConfig
from data_pipelines.records import Box, ExampleRecord, ImageSource
from data_pipelines.synthetic import BOXES_FILE, read_boxes


def collect_files(specs: Sequence[str | Path]) -> list[Path]:
    """Files named by each spec: a directory (recursively, image suffixes only), a glob, a file.

    Raises FileNotFoundError naming a spec that matches nothing.
    """
    files: list[Path] = []
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        elif path.exists():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not found:
            what = (
                "a folder without image files"
                if path.is_dir()
                else "no such file, folder or matching glob"
            )
            raise FileNotFoundError(f"{spec}: {what} (image files: {', '.join(IMAGE_SUFFIXES)})")
        files.extend(found)
    return list(dict.fromkeys(files))


@dataclasses.dataclass
class ImageFiles:
    """Command-line image files as a source, with what their folders and boxes file say.

    ``source`` holds the files that look like whole images, in order (``on_bad_image="skip"``);
    a record's ``label`` is its folder's class, 0 where the folder names none (``labels`` says
    -1 there), ``lesion_box`` its box in original pixels where a boxes file gives one.
    """

    source: ImageSource
    labels: np.ndarray  # [N] class index from the parent folder, -1 when it is none
    original_hw: list[tuple[int, int]]  # (height, width) of each file, from its header
    boxes_file: Path | None  # where the lesion boxes came from (None: no boxes)

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.source.records]

    @property
    def errors(self) -> list[str]:
        """``"path: problem"`` for every file left out when the source was opened."""
        return [f"{path}: {problem}" for path, problem in self.source.skipped]

    @property
    def lesion_boxes(self) -> list[Box | None] | None:
        return None if self.boxes_file is None else [r.lesion_box for r in self.source.records]

    def __len__(self) -> int:
        return len(self.source)

    def crop(self, i: int, cfg: PreprocessConfig) -> CentreCrop:
        """Where the evaluation centre crop of ``cfg`` lies in file ``i``."""
        return CentreCrop.of(self.original_hw[i], cfg)


def open_image_files(
    specs: Sequence[str | Path],
    class_names: Sequence[str],
    *,
    boxes_file: Path | None = None,
    strict_labels: bool = False,
) -> ImageFiles:
    """The image files of ``specs`` (:func:`collect_files`) as an :class:`ImageFiles`.

    ``boxes_file``: lesion boxes (default: a ``boxes.json`` found above the first image, if
    any). ``strict_labels``: every file's parent folder must be a class (ValueError naming the
    first that is not). FileNotFoundError names a spec that matches nothing.
    """
    files = collect_files(specs)
    kept, skipped, sizes = [], [], []
    for path in files:
        problem = image_file_problem(path)
        size = None if problem else _size(path)
        if size is None:
            skipped.append((str(path), problem or "cannot decode as an image"))
            continue
        kept.append(str(path))
        sizes.append((size[1], size[0]))
    labels = labels_from_folders(kept, class_names, strict=strict_labels)
    boxes_file = boxes_file or find_boxes_file(kept)
    boxes = lesion_boxes(kept, boxes_file) if boxes_file is not None else [None] * len(kept)
    records = [
        ExampleRecord(path, max(int(label), 0), patient_of(path), box)
        for path, label, box in zip(kept, labels, boxes, strict=True)
    ]
    source = ImageSource(
        "files", "test", class_names, records, on_bad_image="skip", skipped=skipped
    )
    return ImageFiles(source, labels, sizes, boxes_file)


def _size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header (PIL's lazy open for formats header_size does not read)."""
    size = header_size(path)
    if size is not None:
        return size
    try:
        with Image.open(path) as img:
            return img.size
    except OSError:
        return None


def labels_from_folders(
    paths: Sequence[str], class_names: Sequence[str], *, strict: bool
) -> np.ndarray:
    """Class index from each file's parent folder name (case-insensitive); -1 when it is none.

    ``strict``: raise ValueError naming the first file whose folder is not a class.
    """
    index = {name.upper(): i for i, name in enumerate(class_names)}
    labels = np.array([index.get(Path(p).parent.name.upper(), -1) for p in paths], np.int64)
    if strict and (labels < 0).any():
        bad = paths[int(np.flatnonzero(labels < 0)[0])]
        raise ValueError(
            f"{bad}: parent folder {Path(bad).parent.name!r} is not one of the run's classes "
            f"{tuple(class_names)} (needed for --target=label)"
        )
    return labels


def find_boxes_file(paths: Sequence[str]) -> Path | None:
    """The nearest ``boxes.json`` above the first image, if any (a written synthetic set)."""
    if not paths:
        return None
    for parent in Path(paths[0]).resolve().parents:
        if (parent / BOXES_FILE).is_file():
            return parent / BOXES_FILE
    return None


def lesion_boxes(paths: Sequence[str], boxes_file: Path) -> list[Box | None]:
    """Each image's lesion box (original pixels) from ``boxes_file``; None where it has none.

    Keys of the file are paths relative to its folder (``data_pipelines.synthetic.read_boxes``
    reads it; ValueError naming the file when it is malformed).
    """
    raw = read_boxes(boxes_file)
    root = Path(boxes_file).resolve().parent
    out = []
    for p in paths:
        try:
            key = Path(p).resolve().relative_to(root).as_posix()
        except ValueError:
            key = None
        box = raw.get(key) if key else None
        out.append(None if box is None else tuple(box))
    return out
