"""How a run opens its data: one policy for training, validation and later evaluation.

Training opens ``train`` and ``val`` with the run's carve (``val_fraction``, ``seed``),
leak filter (``drop_leaked``), cap (``max_per_class``, train only) and class subset
(``classes``). Evaluating a run re-opens any split through :func:`open_split` with the same
settings, so ``--split=val`` is exactly the run's validation set and the held-out ``test``
split is opened whole (no carve, no leak filter).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import models
from data_pipelines.class_subsets import restrict_classes
from data_pipelines.layout import DatasetLayoutError
from data_pipelines.preprocess import PreprocessConfig
from data_pipelines.records import ImageSource
from data_pipelines.sources import open_dataset
from engine.config import TrainConfig
from models.metadata import WeightMetadata

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunData:
    train: Any  # data_pipelines ImageSource (a dense task's own source for task=isl)
    val: Any | None
    class_names: tuple[str, ...]
    metadata: WeightMetadata
    train_cfg: Any  # data_pipelines PreprocessConfig (a dense task's geometry for task=isl)
    eval_cfg: Any


def open_split(
    config: TrainConfig,
    split: str,
    *,
    classes: Sequence[str] | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    on_bad_image: str | None = None,
) -> ImageSource:
    """``split`` of the run's data set, opened as training opened it.

    ``classes``: the class names (in label order) the split is restricted to, when they differ
    from the data set's (default ``config.classes``). ``dataset``, ``data_dir`` and
    ``on_bad_image`` override the run's (evaluating on moved or other data).
    """
    held_out = split == "test"  # train/val: the same carve, leak filter and cap as training
    source = open_dataset(
        dataset or config.dataset,
        data_dir=data_dir if data_dir is not None else config.data_dir,
        split=split,
        val_fraction=0.0 if held_out else config.val_fraction,
        seed=config.seed,
        drop_leaked=False if held_out else config.drop_leaked,
        max_per_class=config.max_per_class if split == "train" else None,
        on_bad_image=on_bad_image or config.on_bad_image,
    )
    classes = config.classes if classes is None else classes
    if classes is not None and tuple(source.class_names) != tuple(classes):
        source = restrict_classes(source, list(classes))  # raises naming missing classes
    return source


def open_run_data(config: TrainConfig, metadata: WeightMetadata | None = None) -> RunData:
    """Training/validation sources and the preprocessing the model's weights ask for.

    ``metadata``: the run's own (from its config.json, on resume), so the pretrained file is
    not read again; None reads it from ``config.pretrained`` (or the model's defaults).
    """
    train = open_split(config, "train")
    try:
        val = open_split(config, "val")
    except DatasetLayoutError as err:
        if config.val_fraction > 0:
            raise
        log.warning("no validation split (%s): no best checkpoint will be chosen", err)
        val = None
    if metadata is not None:
        return _run_data(config, train, val, metadata)
    metadata = models.metadata_for(
        config.model,
        config.pretrained,
        num_classes=len(train.class_names),
        in_channels=config.in_channels,
    )
    if config.input_size is not None:
        metadata = metadata.replace(input_size=config.input_size)
    return _run_data(config, train, val, metadata.replace(class_names=train.class_names))


def _run_data(config: TrainConfig, train: Any, val: Any, metadata: WeightMetadata) -> RunData:
    train_cfg = PreprocessConfig.from_metadata(
        metadata, channels=config.in_channels, augment=config.augment
    )
    eval_cfg = PreprocessConfig.from_metadata(metadata, channels=config.in_channels, augment=False)
    return RunData(train, val, train.class_names, metadata, train_cfg, eval_cfg)
