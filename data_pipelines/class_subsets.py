"""Classification tasks defined as class subsets of a data set.

Kermany et al. trained, beside the 4-class OCT model, CNV vs normal, DME vs normal and
drusen vs normal. Each is the OCT data set restricted to two classes, relabelled in the
order given (so the first class named is label 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from data_pipelines.records import ImageSource


def restrict_classes(source: ImageSource, classes: Sequence[str]) -> ImageSource:
    """``source`` keeping only ``classes``, relabelled 0..K-1 in the order given.

    Raises ValueError naming the classes ``source`` does not have.
    """
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
