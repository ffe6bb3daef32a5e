"""Image files named on a command line, for ``launch.occlusion`` and ``launch.predict --workdir``.

Turns ``DIR``, ``GLOB`` and ``FILE`` arguments into a sorted file list, loads each file the way
the run's weights expect (``data_pipelines.preprocess.load_image``), and reports files that
cannot be read by name while keeping the others. Labels come from the parent folder when it
is a class name; lesion boxes from a ``boxes.json`` written by ``data_pipelines.synthetic``.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_pipelines.integrity import IMAGE_SUFFIXES, BadImageError
from data_pipelines.preprocess import PreprocessConfig, load_image
from data_pipelines.synthetic import BOXES_FILE, read_boxes


def collect_files(specs: Sequence[str]) -> list[Path]:
    """Files named by each spec: a directory (recursively, image suffixes only), a glob, a file.

    Raises FileNotFoundError naming a spec that matches nothing.
    """
    files: list[Path] = []
    for spec in specs:
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
class LoadedImages:
    """The images that could be read, in order, and the files that could not."""

    paths: list[str]
    images: np.ndarray  # uint8 [N, S, S, C]
    original_hw: list[tuple[int, int]]
    errors: list[str]  # "path: problem", one per unreadable file


def load_files(
    files: Sequence[Path], cfg: PreprocessConfig, *, progress_every: int = 100
) -> LoadedImages:
    """Load every file with ``cfg`` (evaluation preprocessing); unreadable ones go to ``errors``."""
    from PIL import Image

    paths, arrays, sizes, errors = [], [], [], []
    for i, path in enumerate(files):
        try:
            # load_image first: it refuses a decompression bomb from the header, by name.
            arrays.append(load_image(path, cfg.replace(augment=False)))
            with Image.open(path) as img:
                width, height = img.size
        except BadImageError as err:
            errors.append(str(err))
            continue
        except OSError as err:  # PIL could not even read the header
            errors.append(f"{path}: cannot decode as an image ({type(err).__name__}: {err})")
            continue
        paths.append(str(path))
        sizes.append((height, width))
        if progress_every and (i + 1) % progress_every == 0:
            print(f"loaded {i + 1}/{len(files)} images", flush=True)
    shape = (0, cfg.input_size, cfg.input_size, cfg.channels)
    images = np.stack(arrays) if arrays else np.zeros(shape, np.uint8)
    return LoadedImages(paths, images, sizes, errors)


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


def lesion_boxes(paths: Sequence[str], boxes_file: Path) -> list[tuple[int, int, int, int] | None]:
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
        out.append(raw.get(key) if key else None)
    return out
