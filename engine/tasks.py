"""The run's task family, and classification tasks defined as class subsets of a data set.

A run declares its task (``TrainConfig.task``). ``classification`` is the trainer's own
path; any other task is an object whose hooks the trainer calls where the families differ
(:func:`dense_task`; ``engine.dense_task.DenseTask`` for In Silico Labeling).

Kermany et al. trained, beside the 4-class OCT model, CNV vs normal, DME vs normal and
drusen vs normal. Each is the OCT data set restricted to two classes, relabelled in the
order given (so the first class named is label 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def dense_task(config: Any) -> Any:
    """The task object for a non-classification run (``config.task``), or None."""
    if config.task == "classification":
        return None
    from engine.dense_task import DenseTask

    return DenseTask()


def restrict_classes(source: Any, classes: Sequence[str]) -> Any:
    """``source`` (a data_pipelines ImageSource) keeping only ``classes``, relabelled 0..K-1."""
    import dataclasses

    from data_pipelines.records import ImageSource

    unknown = [c for c in classes if c not in source.class_names]
    if unknown:
        raise ValueError(
            f"classes {unknown} not in {source.name} (has {', '.join(source.class_names)})"
        )
    new_label = {source.class_names.index(c): i for i, c in enumerate(classes)}
    records = [
        dataclasses.replace(r, label=new_label[r.label])
        for r in source.records
        if r.label in new_label
    ]
    return ImageSource(
        source.name,
        source.split,
        tuple(classes),
        records,
        root=source.root,
        store=source.store,
        on_bad_image=source.on_bad_image,
        skipped=source.skipped,
    )
