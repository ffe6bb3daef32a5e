"""Leakage between splits: patients on both sides, and byte-identical files under other names.

The published OCT archive has both (README of ../shared/data/kermany): its official train and
test splits share patients, and some train files are copies of test files. ``audit_splits``
finds them for ``launch.audit``; ``drop_leaked`` removes them from the lower-precedence split
(test > val > train: the test set is the fixed benchmark and never loses examples).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterator

from data_pipelines.integrity import sha256_file
from data_pipelines.records import ExampleRecord, ImageSource

log = logging.getLogger(__name__)

SPLIT_PRECEDENCE = ("test", "val", "train")
_hash_cache: dict[tuple[str, int, int], str] = {}


def content_hash(source: ImageSource, record: ExampleRecord) -> str:
    """SHA-256 of the example's original file (recorded, or read), else of the store's bytes."""
    if record.sha256:
        return record.sha256
    if record.key is not None and source.store is not None:
        element = source.store[record.key]
        if "image_bytes" in element:
            return hashlib.sha256(element["image_bytes"]).hexdigest()
        return hashlib.sha256(element["image"].tobytes()).hexdigest()
    stat = os.stat(record.path)
    cache_key = (record.path, stat.st_size, stat.st_mtime_ns)
    if cache_key not in _hash_cache:
        _hash_cache[cache_key] = sha256_file(record.path)
    return _hash_cache[cache_key]


@dataclasses.dataclass(frozen=True)
class PairAudit:
    """What two splits share. Counts are per class, for the examples of each split involved."""

    first: str
    second: str
    shared_patients: tuple[str, ...]
    patient_examples: dict[str, dict[str, int]]  # split -> class -> examples of shared patients
    duplicates: tuple[tuple[str, str], ...]  # (path in first, path in second), identical bytes
    duplicate_examples: dict[str, dict[str, int]]  # split -> class -> duplicated examples

    @property
    def leaked(self) -> bool:
        return bool(self.shared_patients or self.duplicates)

    def to_json(self) -> dict:
        return {
            "splits": [self.first, self.second],
            "shared_patients": len(self.shared_patients),
            "shared_patient_examples_per_class": self.patient_examples,
            "identical_files": len(self.duplicates),
            "identical_file_examples_per_class": self.duplicate_examples,
            "shared_patient_ids": list(self.shared_patients),
            "identical_file_pairs": [list(pair) for pair in self.duplicates],
        }


def _per_class(source: ImageSource, records: list[ExampleRecord]) -> dict[str, int]:
    counts = Counter(source.class_names[r.label] for r in records)
    return dict(sorted(counts.items()))


def audit_pair(first: ImageSource, second: ImageSource, *, hashes: bool = True) -> PairAudit:
    """Shared patients and identical files between two splits."""
    shared = sorted(first.patients() & second.patients())
    shared_set = set(shared)
    patient_examples = {
        src.split: _per_class(src, [r for r in src.records if r.patient in shared_set])
        for src in (first, second)
    }
    duplicates: list[tuple[str, str]] = []
    dup_records: dict[str, list[ExampleRecord]] = {first.split: [], second.split: []}
    if hashes:
        by_hash: dict[str, list[ExampleRecord]] = defaultdict(list)
        for record in first.records:
            by_hash[content_hash(first, record)].append(record)
        seen_first: set[str] = set()
        for record in second.records:
            matches = by_hash.get(content_hash(second, record), [])
            for match in matches:
                duplicates.append((match.path, record.path))
                if match.path not in seen_first:
                    seen_first.add(match.path)
                    dup_records[first.split].append(match)
            if matches:
                dup_records[second.split].append(record)
    return PairAudit(
        first=first.split,
        second=second.split,
        shared_patients=tuple(shared),
        patient_examples=patient_examples,
        duplicates=tuple(sorted(duplicates)),
        duplicate_examples={
            first.split: _per_class(first, dup_records[first.split]),
            second.split: _per_class(second, dup_records[second.split]),
        },
    )


def audit_splits(splits: dict[str, ImageSource], *, hashes: bool = True) -> list[PairAudit]:
    """``audit_pair`` for every pair of the given splits (train, val, test order)."""
    order = ("train", "val", "test")
    names = sorted(splits, key=lambda s: order.index(s) if s in order else len(order))
    return [
        audit_pair(splits[a], splits[b], hashes=hashes) for a, b in itertools.combinations(names, 2)
    ]


def drop_leaked(source: ImageSource, others: list[ImageSource]) -> ImageSource:
    """``source`` without the examples that leak into a split of higher precedence.

    An example leaks when its patient appears in that split or its bytes equal a file there.
    Every dropped file is logged with the reason.
    """
    rank = SPLIT_PRECEDENCE.index(source.split)
    higher = [o for o in others if SPLIT_PRECEDENCE.index(o.split) < rank]
    if not higher:
        return source
    patients = set().union(*(o.patients() for o in higher))
    hashes = {content_hash(o, r) for o in higher for r in o.records}
    kept, dropped = [], []
    for record in source.records:
        if record.patient in patients:
            dropped.append((record.path, f"patient {record.patient} is also in a higher split"))
        elif content_hash(source, record) in hashes:
            dropped.append((record.path, "identical bytes to a file in a higher split"))
        else:
            kept.append(record)
    for path, why in dropped:
        log.info("drop_leaked: %s (%s)", path, why)
    log.warning(
        "drop_leaked: removed %d of %d %s examples that leak into %s",
        len(dropped),
        len(source),
        source.split,
        "/".join(o.split for o in higher),
    )
    return source.replace_records(kept)


# One row per leaked file (``launch.audit --out``): which pair, why, and where it is.
LEAK_COLUMNS = ("pair", "reason", "split", "class", "patient", "path", "identical_to")


def records_by_patient(source: ImageSource, patients: set[str]) -> dict[str, list[ExampleRecord]]:
    """``source``'s records of each patient in ``patients``, in source order."""
    found: dict[str, list[ExampleRecord]] = defaultdict(list)
    for record in source.records:
        if record.patient in patients:
            found[record.patient].append(record)
    return found


def leaked_files(splits: dict[str, ImageSource], audit: PairAudit) -> Iterator[dict[str, str]]:
    """Every file of ``audit``'s two splits that leaks: shared patients first, then copies."""
    pair = f"{audit.first} x {audit.second}"
    sources = (splits[audit.first], splits[audit.second])
    shared = [records_by_patient(source, set(audit.shared_patients)) for source in sources]
    for patient in audit.shared_patients:
        for source, records in zip(sources, shared, strict=True):
            for record in records[patient]:
                yield _leak_row(pair, "shared_patient", source, record, "")
    by_path = [{r.path: r for r in source.records} for source in sources]
    for first, second in audit.duplicates:
        yield _leak_row(pair, "identical_file", sources[0], by_path[0][first], second)
        yield _leak_row(pair, "identical_file", sources[1], by_path[1][second], first)


def _leak_row(
    pair: str, reason: str, source: ImageSource, record: ExampleRecord, identical_to: str
) -> dict[str, str]:
    return {
        "pair": pair,
        "reason": reason,
        "split": source.split,
        "class": source.class_names[record.label],
        "patient": record.patient,
        "path": record.path,
        "identical_to": identical_to,
    }
