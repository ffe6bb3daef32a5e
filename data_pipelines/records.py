"""The example record and the random-access source every pipeline reads from.

``ImageSource`` follows Grain's ``RandomAccessDataSource`` protocol (``len``, ``[i]``) and
holds the metadata only (path, label, patient); pixels are read by the per-example ops, so a
source is cheap to build, to subset and to pickle into worker processes. Sources whose pixels
are not plain files (TFDS ArrayRecord, in-memory synthetic images) attach a ``store`` that
returns the encoded bytes or the array for a record's ``key``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

Box = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class ExampleRecord:
    """One labelled image. ``lesion_box`` (y0, x0, y1, x1) in original pixels, if known."""

    path: str
    label: int
    patient: str
    lesion_box: Box | None = None
    key: int | None = None  # row in the source's store; None: read ``path`` from disk
    sha256: str | None = None  # hash of the original file when known (prepared builds)


class PixelStore(Protocol):
    """Where pixels live when they are not files: ``store[key]`` -> extra element fields."""

    def __getitem__(self, key: int) -> dict[str, Any]: ...


class ImageSource:
    """A split of a data set: records plus class names, random access for Grain.

    ``src[i]`` -> ``{"path", "label", "patient"}`` (+ ``"lesion_box"`` where known, +
    ``"image"`` uint8 array or ``"image_bytes"`` where pixels come from a store).
    """

    def __init__(
        self,
        name: str,
        split: str,
        class_names: Sequence[str],
        records: Iterable[ExampleRecord],
        *,
        root: str | None = None,
        store: PixelStore | None = None,
        on_bad_image: str = "error",
        skipped: Sequence[tuple[str, str]] = (),
    ):
        self.name = name
        self.split = split
        self.class_names = tuple(class_names)
        self.records = list(records)
        self.root = root
        self.store = store
        self.on_bad_image = on_bad_image
        # (path, problem) for every file left out when the source was opened.
        self.skipped = list(skipped)
        for record in self.records:
            if not 0 <= record.label < len(self.class_names):
                raise ValueError(f"{record.path}: label {record.label} outside {self.class_names}")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        element: dict[str, Any] = {
            "path": record.path,
            "label": record.label,
            "patient": record.patient,
        }
        if record.lesion_box is not None:
            element["lesion_box"] = record.lesion_box
        if record.key is not None and self.store is not None:
            element.update(self.store[record.key])
        return element

    def __repr__(self) -> str:
        return (
            f"ImageSource({self.name!r}, split={self.split!r}, n={len(self)}, "
            f"classes={self.class_names})"
        )

    def counts(self) -> dict[str, int]:
        """Examples per class name (every class listed, zeros included)."""
        counts = Counter(r.label for r in self.records)
        return {name: counts.get(i, 0) for i, name in enumerate(self.class_names)}

    def patients(self) -> set[str]:
        return {r.patient for r in self.records}

    def filter(
        self, keep: Callable[[ExampleRecord], bool], *, split: str | None = None
    ) -> ImageSource:
        """A source over the records for which ``keep`` is true (same classes, same store)."""
        return self.replace_records([r for r in self.records if keep(r)], split=split)

    def replace_records(
        self, records: Iterable[ExampleRecord], *, split: str | None = None, name: str | None = None
    ) -> ImageSource:
        """The same source (classes, store, policy) over other records."""
        return ImageSource(
            name or self.name,
            split or self.split,
            self.class_names,
            records,
            root=self.root,
            store=self.store,
            on_bad_image=self.on_bad_image,
            skipped=self.skipped,
        )
