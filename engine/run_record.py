"""A run's ``config.json`` read once into types: the resolved :class:`TrainConfig` plus what the
data and the weights decided (class names, preprocessing metadata, batch and step counts).

Evaluation, prediction and occlusion read attributes of a :class:`RunRecord`, never raw keys
with defaults of their own. A field an older ``config.json`` lacks takes ``TrainConfig``'s
default, as a resume does (``engine.resume``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from data_pipelines.preprocess import PreprocessConfig
from engine.config import TrainConfig
from models.metadata import WeightMetadata

log = logging.getLogger(__name__)

# Keys the trainer adds to the TrainConfig fields; the first three are required to rebuild a model.
REQUIRED_KEYS = ("model", "num_classes", "in_channels", "metadata", "class_names")
_RESOLVED_KEYS = (
    "num_classes",
    "class_names",
    "metadata",
    "global_batch_size",
    "total_steps",
    "train_examples",
    "val_examples",
)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What a training run was and what its data and weights decided."""

    config: TrainConfig
    class_names: tuple[str, ...]
    metadata: WeightMetadata  # the preprocessing the run trained with
    global_batch_size: int | None = None  # None: written by an older version
    total_steps: int | None = None
    train_examples: int | None = None
    val_examples: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def eval_batch_size(self) -> int:
        """The eval batch size the run asked for: evaluation's default batch."""
        return self.config.eval_batch_size or self.config.batch_size

    def eval_preprocess(self) -> PreprocessConfig:
        """How evaluation feeds a classification run's images: its weights' preprocessing."""
        return PreprocessConfig.from_metadata(self.metadata, channels=self.config.in_channels)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str | Path = "config.json") -> RunRecord:
        """Parse a ``config.json``; ``where`` names the file in errors."""
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise ValueError(f"{where}: missing keys {missing}")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        dropped = sorted(set(raw) - known - set(_RESOLVED_KEYS))
        if dropped:  # a field an older version wrote and this one no longer has
            log.info("%s: ignoring keys this version does not know: %s", where, dropped)
        try:
            config = TrainConfig.from_dict({k: v for k, v in raw.items() if k in known})
            metadata = WeightMetadata.from_json(json.dumps(raw["metadata"]))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None
        class_names = tuple(raw["class_names"])
        if len(class_names) != raw["num_classes"]:
            raise ValueError(
                f"{where}: {len(class_names)} class names for num_classes={raw['num_classes']}"
            )
        return cls(
            config,
            class_names,
            metadata,
            global_batch_size=raw.get("global_batch_size"),
            total_steps=raw.get("total_steps"),
            train_examples=raw.get("train_examples"),
            val_examples=raw.get("val_examples"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` form (inverse of :meth:`from_dict`)."""
        return self.config.to_dict() | {
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "metadata": json.loads(self.metadata.to_json()),
            "global_batch_size": self.global_batch_size,
            "total_steps": self.total_steps,
            "train_examples": self.train_examples,
            "val_examples": self.val_examples,
        }
