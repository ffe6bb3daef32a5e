"""Finding and listing class-per-folder trees, with errors that say what was expected.

A wrong root, a missing split, an unknown or empty class folder are the first things that go
wrong with a freshly unpacked archive; each gets a message naming the path, the expected
layout and where the data comes from. Nothing here decodes pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from data_pipelines.integrity import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SOURCE_HINT = (
    "The data sets are Kermany et al. (2018), Mendeley Data doi:10.17632/rscbjbr9sj.2 "
    "(or the Kaggle re-split 'kermany2018' / 'chest-xray-pneumonia'); unpack the archive and "
    "point --data_dir at it. Nothing is downloaded at run time."
)


class DatasetLayoutError(ValueError):
    """The files on disk do not have the layout a data set needs."""


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name.startswith("__")


def find_root(
    data_dir: str | Path, candidates: Sequence[str], *, dataset: str, expected: str
) -> Path:
    """The folder holding the split folders: ``data_dir`` itself or one of its ``candidates``.

    Candidates are matched ignoring case and surrounding spaces (the Kaggle archive unpacks to
    ``"OCT2017 "`` with a trailing space).
    """
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DatasetLayoutError(
            f"{dataset}: data_dir {data_dir} does not exist or is not a folder; "
            f"expected {expected}. " + SOURCE_HINT
        )
    tried = []
    for candidate in ("", *candidates):
        folder = _find_child_path(data_dir, candidate) if candidate else data_dir
        tried.append(str(data_dir / candidate) if candidate else str(data_dir))
        if folder is not None and any((folder / s).is_dir() for s in SPLITS):
            return folder
    raise DatasetLayoutError(
        f"{dataset}: no split folder (train/, val/ or test/) found under {data_dir} "
        f"(looked in: {', '.join(tried)}); expected {expected}. " + SOURCE_HINT
    )


def _find_child_path(root: Path, relative: str) -> Path | None:
    """``root/relative`` matching each component ignoring case and surrounding spaces."""
    current = root
    for part in Path(relative).parts:
        if not current.is_dir():
            return None
        matches = [
            c for c in current.iterdir() if c.is_dir() and c.name.strip().lower() == part.lower()
        ]
        if not matches:
            return None
        current = min(matches)
    return current


def list_split(
    root: Path,
    split: str,
    *,
    dataset: str,
    expected: str,
    classes: Sequence[str] | None,
    require_all_classes: bool = True,
) -> list[tuple[Path, str]]:
    """``(file, class folder)`` for every non-hidden file under ``root/split/<class>/``, sorted.

    ``classes``: the allowed class folders (matched ignoring case, reported canonically);
    None accepts any folder. Files with other extensions are returned too: the caller decides
    (with ``on_bad_image``) what a non-image file means.
    """
    split_dir = root / split
    if not split_dir.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p))
        raise DatasetLayoutError(
            f"{dataset}: split folder {split_dir} is missing (found: {present or 'nothing'}); "
            f"expected {expected}."
        )
    canonical = {c.lower(): c for c in classes} if classes is not None else None
    found: dict[str, Path] = {}
    for child in sorted(split_dir.iterdir()):
        if _is_hidden(child):
            continue
        if not child.is_dir():
            log.warning("%s: ignoring %s (not inside a class folder)", dataset, child)
            continue
        if canonical is not None and child.name.lower() not in canonical:
            raise DatasetLayoutError(
                f"{dataset}: unknown class folder {child}; expected only {', '.join(classes)} "
                f"under {split_dir}."
            )
        found[canonical[child.name.lower()] if canonical else child.name] = child
    if not found:
        raise DatasetLayoutError(
            f"{dataset}: {split_dir} holds no class folders; expected {expected}."
        )
    if classes is not None and require_all_classes:
        missing = [c for c in classes if c not in found]
        if missing:
            raise DatasetLayoutError(
                f"{dataset}: class folder(s) {', '.join(missing)} missing under {split_dir}; "
                f"expected {expected}."
            )
    files: list[tuple[Path, str]] = []
    for name, folder in sorted(found.items()):
        entries = [p for p in sorted(folder.iterdir()) if not _is_hidden(p)]
        for sub in (p for p in entries if p.is_dir()):
            log.warning("%s: ignoring sub-folder %s inside class folder %s", dataset, sub, folder)
        class_files = [p for p in entries if p.is_file()]
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in class_files):
            raise DatasetLayoutError(
                f"{dataset}: class folder {folder} holds no images "
                f"({', '.join(IMAGE_SUFFIXES)}); expected {expected}."
            )
        files.extend((p, name) for p in class_files)
    return files


def class_folders(root: Path, split: str) -> list[str]:
    """Sorted class-folder names of ``root/split`` (the label order of a generic tree)."""
    split_dir = root / split
    if not split_dir.is_dir():
        return []
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not _is_hidden(p))
