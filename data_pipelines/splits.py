"""Patient-level validation splits and the paper's limited training sets, reproducible by seed.

Two scans of one patient are nearly the same image: a validation split that puts them on both
sides measures memory, not generalisation. Whole patients are therefore assigned to validation,
stratified by each patient's majority class so that rare classes (DRUSEN, DME) are present on
both sides. ``limit_per_class`` draws the "limited" training sets (``--max_per_class=1000``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from data_pipelines.records import ExampleRecord, ImageSource


def validation_patients(records: list[ExampleRecord], fraction: float, seed: int) -> set[str]:
    """Patients assigned to validation: ``fraction`` of the patients of each majority class.

    Deterministic in (records, fraction, seed); the order of ``records`` does not matter.
    Each stratum with at least two patients gives at least one patient to validation.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return set()
    per_patient: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        per_patient[record.patient][record.label] += 1
    strata: dict[int, list[str]] = defaultdict(list)
    for patient, labels in per_patient.items():
        majority = min(labels, key=lambda label: (-labels[label], label))
        strata[majority].append(patient)
    chosen: set[str] = set()
    for label in sorted(strata):
        patients = sorted(strata[label])
        rng = np.random.default_rng([seed, label])
        take = round(fraction * len(patients))
        if len(patients) >= 2:
            take = min(max(take, 1), len(patients) - 1)
        else:
            take = 0
        order = rng.permutation(len(patients))
        chosen.update(patients[i] for i in order[:take])
    return chosen


def split_train_val(
    source: ImageSource, fraction: float, seed: int
) -> tuple[ImageSource, ImageSource]:
    """(train, val) from one source, no patient on both sides."""
    held_out = validation_patients(source.records, fraction, seed)
    train = source.filter(lambda r: r.patient not in held_out, split="train")
    val = source.filter(lambda r: r.patient in held_out, split="val")
    return train, val


def limit_per_class(source: ImageSource, max_per_class: int, seed: int) -> ImageSource:
    """At most ``max_per_class`` examples of each class, drawn at random with ``seed``.

    The draw of one class does not depend on the others, and the kept records stay in their
    original (sorted) order.
    """
    if max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1, got {max_per_class}")
    by_label: dict[int, list[int]] = defaultdict(list)
    for index, record in enumerate(source.records):
        by_label[record.label].append(index)
    keep: set[int] = set()
    for label, indices in by_label.items():
        if len(indices) <= max_per_class:
            keep.update(indices)
            continue
        rng = np.random.default_rng([seed, label, 1000])
        keep.update(indices[i] for i in rng.choice(len(indices), max_per_class, replace=False))
    return source.replace_records([r for i, r in enumerate(source.records) if i in keep])


def class_balanced_order(labels: np.ndarray) -> np.ndarray:
    """Indices of one class-balanced epoch: every class repeated up to the largest class.

    Class ``c`` with ``n_c`` examples contributes ``max_n`` indices, its own cycled
    ``ceil(max_n / n_c)`` times and cut; the caller shuffles.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    largest = max(int(np.sum(labels == c)) for c in classes)
    parts = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        parts.append(np.tile(members, math.ceil(largest / len(members)))[:largest])
    return np.concatenate(parts)


def patient_folds(patients: list[str], labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id in ``[0, k)`` of every example: whole patients per fold, classes spread evenly.

    Cross-validation that splits one patient's scans over folds scores memory, not
    generalisation. Patients (shuffled by ``seed``, largest first) go one at a time to the fold
    whose per-class share of the data stays most even (a greedy stratified group k-fold).
    """
    labels = np.asarray(labels, np.int64)
    if len(patients) != labels.size:
        raise ValueError(f"{len(patients)} patient ids for {labels.size} labels")
    names = sorted(set(patients))
    if len(names) < k:
        raise ValueError(
            f"{k}-fold cross-validation needs at least {k} patients, found {len(names)}"
        )
    num_classes = int(labels.max()) + 1
    index = {name: i for i, name in enumerate(names)}
    patient_of = np.array([index[p] for p in patients])
    counts = np.zeros((len(names), num_classes))
    np.add.at(counts, (patient_of, labels), 1)
    totals = np.maximum(counts.sum(axis=0), 1)
    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    fold_counts = np.zeros((k, num_classes))
    fold_of_patient = np.empty(len(names), np.int64)
    for p in order:
        trial = fold_counts[None] + np.eye(k)[:, :, None] * counts[p][None, None]
        spread = (trial / totals).std(axis=1).sum(axis=1)
        sizes = fold_counts.sum(axis=1)
        best = min(range(k), key=lambda f: (round(spread[f], 12), sizes[f], f))
        fold_counts[best] += counts[p]
        fold_of_patient[p] = best
    return fold_of_patient[patient_of]
