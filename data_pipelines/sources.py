"""Data sets by name: ``open_dataset("oct", data_dir=..., split="train")`` -> ImageSource.

Each name is an entry of the data-set table (``data_pipelines.datasets``: a folder layout, which
class a file belongs to, which patient it comes from). On top of the raw split, in this order:
the patient-level validation carve (``val_fraction``), dropping examples that leak into a higher
split (``drop_leaked``), and the seeded per-class draw of the limited training sets
(``max_per_class``). A folder holding a TFDS ArrayRecord build from ``launch.prepare`` is read
from there instead of the image files.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from data_pipelines import prepared
from data_pipelines.datasets import (
    BUNDLED_OCT_SAMPLE,
    DATASETS,
    LAYOUTS,
    FolderLayout,
    missing_data_message,
)
from data_pipelines.integrity import (
    BadImageError,
    check_on_bad_image,
    image_file_problem,
    report_skipped,
)
from data_pipelines.layout import DatasetLayoutError, class_folders, find_root, list_split
from data_pipelines.leakage import drop_leaked as drop_leaked_examples
from data_pipelines.records import ExampleRecord, ImageSource
from data_pipelines.splits import limit_per_class, split_train_val
from data_pipelines.synthetic import read_boxes, synthetic_source

__all__ = [  # the table's names, read from here by launch/ and the tests
    "BUNDLED_OCT_SAMPLE",
    "DATASETS",
    "LAYOUTS",
    "SPLITS",
    "missing_data_message",
    "open_dataset",
    "open_splits",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def _read_split(
    layout: FolderLayout, root: Path, split: str, class_names: tuple[str, ...], on_bad_image: str
) -> ImageSource:
    """All examples of one split folder, after the cheap integrity checks."""
    files = list_split(
        root,
        split,
        dataset=layout.name,
        expected=layout.expected,
        classes=layout.folders or class_names,
        require_all_classes=layout.folders is not None,
    )
    label_of = {name: i for i, name in enumerate(class_names)}
    records: list[ExampleRecord] = []
    bad: list[tuple[str, str]] = []
    unnamed = 0
    for path, folder in files:
        try:
            problem = image_file_problem(path)
            if problem:
                raise BadImageError(path, problem)
            class_name = layout.class_of(path, folder)
        except BadImageError as err:
            bad.append((err.path, err.problem))
            continue
        if class_name is None:
            continue
        patient = layout.patient_of(path)
        if patient is None:
            unnamed += 1
            patient = path.stem
        records.append(ExampleRecord(str(path), label_of[class_name], patient))
    if bad and on_bad_image == "error":
        listed = "\n  ".join(f"{p}: {why}" for p, why in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise BadImageError(
            bad[0][0],
            f"{bad[0][1]}\n{layout.name}/{split}: {len(bad)} bad file(s) (pass "
            f"on_bad_image='skip' / --on_bad_image=skip to leave them out, listed in the log):"
            f"\n  {listed}{more}",
        )
    report_skipped(bad, f"{layout.name}/{split} under {root}")
    if unnamed:
        log.warning(
            "%s/%s: %d file name(s) carry no patient id; each taken as its own patient",
            layout.name,
            split,
            unnamed,
        )
    return ImageSource(
        layout.name,
        split,
        class_names,
        records,
        root=str(root),
        on_bad_image=on_bad_image,
        skipped=bad,
    )


def _class_names(layout: FolderLayout, root: Path, split: str) -> tuple[str, ...]:
    if layout.class_names is not None:
        return layout.class_names
    names = class_folders(root, "train") or class_folders(root, split)
    if not names:
        raise DatasetLayoutError(
            f"folder: no class folders under {root / 'train'} or {root / split}; "
            f"expected {layout.expected}"
        )
    return tuple(names)


def _open_raw(
    name: str,
    data_dir: str | Path | None,
    split: str,
    val_fraction: float,
    seed: int,
    on_bad_image: str,
) -> tuple[ImageSource, list[ImageSource]]:
    """The requested split (val carved when asked) and the other splits present (for
    drop_leaked)."""
    if name == "synthetic" and data_dir is None:
        others = [synthetic_source(s, seed=seed) for s in SPLITS if s != split]
        return synthetic_source(split, seed=seed), others
    layout = LAYOUTS["folder" if name == "synthetic" else name]
    if data_dir is None:
        if name != "oct_sample":
            raise DatasetLayoutError(missing_data_message(name))
        data_dir = BUNDLED_OCT_SAMPLE
    prepared = _prepared_source(name, Path(data_dir), split, val_fraction, seed, on_bad_image)
    if prepared is not None:
        return prepared
    root = find_root(data_dir, layout.root_candidates, dataset=name, expected=layout.expected)
    class_names = _class_names(layout, root, split)

    def read(s: str) -> ImageSource:
        return _read_split(layout, root, s, class_names, on_bad_image)

    present = [s for s in SPLITS if (root / s).is_dir()]
    if val_fraction > 0 and split in ("train", "val"):
        train, val = split_train_val(read("train"), val_fraction, seed)
        others = [read(s) for s in present if s not in ("train", "val")]
        return (train, [val, *others]) if split == "train" else (val, [train, *others])
    if split == "val" and "val" not in present:
        raise DatasetLayoutError(
            f"{name}: no val/ folder under {root}; pass val_fraction > 0 (--val_fraction) for a "
            f"patient-level split carved from train, or provide {root / 'val'}"
        )
    return read(split), [read(s) for s in present if s != split]


def _prepared_source(
    name: str, data_dir: Path, split: str, val_fraction: float, seed: int, on_bad_image: str
) -> tuple[ImageSource, list[ImageSource]] | None:
    """The TFDS ArrayRecord build of ``name`` under ``data_dir``, if there is one."""
    if not prepared.has_build(name, data_dir):
        return None
    log.info("%s: reading the TFDS ArrayRecord build under %s", name, data_dir)
    splits = prepared.open_splits(name, data_dir, on_bad_image=on_bad_image)
    if val_fraction > 0 and split in ("train", "val"):
        train, val = split_train_val(splits["train"], val_fraction, seed)
        rest = [s for k, s in splits.items() if k not in ("train", "val")]
        return (train, [val, *rest]) if split == "train" else (val, [train, *rest])
    if split not in splits:
        raise DatasetLayoutError(
            f"{name}: the build under {data_dir} has no {split!r} split "
            f"(has {sorted(splits)}); pass val_fraction > 0 for a val split"
        )
    return splits[split], [s for k, s in splits.items() if k != split]


def _attach_boxes(source: ImageSource) -> ImageSource:
    """Lesion boxes from a written synthetic set's ``boxes.json``."""
    boxes = read_boxes(source.root)
    root = Path(source.root)
    return source.replace_records(
        (
            dataclasses.replace(r, lesion_box=boxes.get(Path(r.path).relative_to(root).as_posix()))
            for r in source.records
        ),
        name="synthetic",
    )


def open_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    split: str,
    val_fraction: float = 0.0,
    seed: int = 0,
    max_per_class: int | None = None,
    drop_leaked: bool = False,
    on_bad_image: str = "error",
) -> ImageSource:
    """One split of a named data set (see the module docstring for the order of steps).

    ``name``: one of DATASETS. ``split``: "train" | "val" | "test"; "val" is the patient-level
    carve from train when ``val_fraction > 0``, else the published ``val/`` folder.
    ``data_dir``: the unpacked archive (optional for "oct_sample" and "synthetic", which is
    then generated in memory from ``seed``; with a ``data_dir``, "synthetic" reads a folder
    written by ``write_synthetic``). ``on_bad_image``: "error" raises on the first bad file
    (all bad files listed); "skip" leaves them out and logs each one.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    check_on_bad_image(on_bad_image)
    source, others = _open_raw(name, data_dir, split, val_fraction, seed, on_bad_image)
    if name == "synthetic" and data_dir is not None:
        source = _attach_boxes(source)
    if drop_leaked:
        source = drop_leaked_examples(source, others)
    if max_per_class is not None:
        source = limit_per_class(source, max_per_class, seed)
    log.info("%s/%s: %d examples %s", name, split, len(source), source.counts())
    return source


def open_splits(
    name: str,
    *,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
    on_bad_image: str = "error",
) -> dict[str, ImageSource]:
    """Every split present (train, val when there is one or it is carved, test): for the audit."""
    first, others = _open_raw(name, data_dir, "train", val_fraction, seed, on_bad_image)
    return {s.split: s for s in (first, *others)}
