"""The 1000 ImageNet-1k class names, in the standard class-index order of the published weights.

``imagenet_classes.txt`` (one name per line, index = line number from 0) was copied from
``IMAGENET_LABELS_LIST`` in tensorflow-datasets 4.9.10,
``tensorflow_datasets/datasets/siscore/labels.py`` (Apache-2.0): the human-readable WordNet
synonyms used by torchvision, timm and Keras ("tench, Tinca tinca" ... "toilet tissue, ...";
281-285 are the domestic cats). Shipped as package data so nothing is fetched at run time.
"""

from __future__ import annotations

import functools
from pathlib import Path

NUM_IMAGENET_CLASSES = 1000
_FILE = Path(__file__).with_name("imagenet_classes.txt")


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 names, index = ImageNet-1k class index."""
    lines = _FILE.read_text(encoding="utf-8").splitlines()
    names = tuple(line.strip() for line in lines if line.strip())
    if len(names) != NUM_IMAGENET_CLASSES:
        raise RuntimeError(
            f"{_FILE}: expected {NUM_IMAGENET_CLASSES} class names, found {len(names)}"
        )
    return names
