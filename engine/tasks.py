"""The run's task family.

A run declares its task (``TrainConfig.task``). ``classification`` is the trainer's own
path; any other task is an object whose hooks the trainer calls where the families differ
(:func:`dense_task`; ``engine.dense_task.DenseTask`` for In Silico Labeling). Classification
tasks that are class subsets of a data set (the paper's binary OCT tasks) are a data
operation: ``data_pipelines.class_subsets``.
"""

from __future__ import annotations

from typing import Any

from engine.dense_task import DenseTask


def dense_task(config: Any) -> Any:
    """The task object for a non-classification run (``config.task``), or None."""
    if config.task == "classification":
        return None
    return DenseTask()
